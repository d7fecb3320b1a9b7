"""Adaptive moments with analytic PSF deconvolution: exact on Gaussians, bounded on noise."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shearbridge.models.moments import (
    MOMENT_KEYS,
    WEIGHT_FRACTIONS,
    adaptive_moments,
    distortion_to_shear,
    moment_features,
    sym2_clip,
    sym2_inv,
)

PSF_PX = 1.8


def sheared_gaussian(size, sigma_px, g1, g2, x0=0.0, y0=0.0, flux=2.0, psf_px=PSF_PX):
    """Galaxy (sigma, g) convolved with a Gaussian PSF and the pixel's 1/12 px^2.

    Sampled at centres.
    """
    k = 1 / np.sqrt(1 - g1**2 - g2**2)
    a = k * np.array([[1 + g1, g2], [g2, 1 - g1]])
    cov = sigma_px**2 * a @ a.T + (psf_px**2 + 1 / 12) * np.eye(2)
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size] - c
    x, y = x - x0, y - y0
    inv = np.linalg.inv(cov)
    q = inv[0, 0] * x**2 + 2 * inv[0, 1] * x * y + inv[1, 1] * y**2
    return flux * np.exp(-0.5 * q) / (2 * np.pi * np.sqrt(np.linalg.det(cov)))


CASES = [(2.0, 0.3, -0.2, 0.0, 0.0), (3.5, -0.5, 0.1, 0.7, -1.2), (1.5, 0.05, 0.6, -1.0, 0.4)]


@pytest.mark.parametrize("sigma,g1,g2,x0,y0", CASES)
def test_recovers_the_shear_of_a_psf_convolved_gaussian(sigma, g1, g2, x0, y0):
    """Exact up to float32 round-off for a Gaussian well inside the stamp, off-centre included."""
    img = sheared_gaussian(53, sigma, g1, g2, x0, y0)
    out = adaptive_moments(jnp.asarray(img[None], jnp.float32), PSF_PX, n_iter=6)
    np.testing.assert_allclose([out["g1"][0], out["g2"][0]], [g1, g2], atol=2e-4)
    np.testing.assert_allclose([out["x0"][0], out["y0"][0]], [x0, y0], atol=1e-3)
    gsq = g1**2 + g2**2  # trace of sigma^2 A A^T = 2 sigma^2 (1 + |g|^2) / (1 - |g|^2)
    np.testing.assert_allclose(
        np.exp(out["log_t_gal"][0]), 2 * sigma**2 * (1 + gsq) / (1 - gsq), rtol=2e-3
    )


@pytest.mark.pipeline
def test_shear_is_flux_free_and_rotates_as_spin_two():
    img = sheared_gaussian(53, 2.5, 0.25, 0.1)
    x = jnp.asarray(np.stack([img, 4 * img, np.rot90(img).copy(), img.T.copy()]), jnp.float32)
    out = adaptive_moments(x, PSF_PX)
    g = np.stack([out["g1"], out["g2"]], 1)
    np.testing.assert_allclose(g[1], g[0], atol=1e-6)
    np.testing.assert_allclose(g[2], -g[0], atol=2e-5)  # quarter turn: g -> -g
    np.testing.assert_allclose(g[3], [-g[0, 0], g[0, 1]], atol=2e-5)  # transpose: g1 -> -g1


@pytest.mark.pipeline
def test_noise_only_stamps_give_finite_bounded_features():
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 53, 53)) * 1e-2
    feats = moment_features(x, PSF_PX)
    assert feats.shape == (64, len(WEIGHT_FRACTIONS) * len(MOMENT_KEYS))
    assert bool(jnp.all(jnp.isfinite(feats)))
    for k in range(len(WEIGHT_FRACTIONS)):
        g = np.hypot(feats[:, k * len(MOMENT_KEYS)], feats[:, k * len(MOMENT_KEYS) + 1])
        assert np.all(g < 1.0)


def test_two_by_two_helpers():
    a, b, d = 3.0, 0.7, 1.5
    ia, ib, id_ = sym2_inv(a, b, d)
    np.testing.assert_allclose(
        np.array([[ia, ib], [ib, id_]]) @ np.array([[a, b], [b, d]]), np.eye(2), atol=1e-12
    )
    ca, cb, cd = sym2_clip(jnp.float64(a), jnp.float64(b), jnp.float64(d), 2.0, 2.5)
    ev = np.linalg.eigvalsh(np.array([[ca, cb], [cb, cd]], dtype=float))
    ev0 = np.linalg.eigvalsh(np.array([[a, b], [b, d]]))
    np.testing.assert_allclose(ev, np.clip(ev0, 2.0, 2.5), rtol=1e-6)
    # a round ellipse has no shear; |g| = (a - b) / (a + b) for axis ratio b/a
    g1, g2 = distortion_to_shear(jnp.float32(4.0), jnp.float32(0.0), jnp.float32(1.0))
    np.testing.assert_allclose([g1, g2], [(2 - 1) / (2 + 1), 0.0], atol=1e-6)


def test_a_tight_weight_also_recovers_the_shear():
    """weight_fraction < 1 changes the noise, not the answer, on a Gaussian."""
    img = sheared_gaussian(53, 2.5, -0.2, 0.35, 0.3, 0.2)
    out = adaptive_moments(
        jnp.asarray(img[None], jnp.float32), PSF_PX, n_iter=6, weight_fraction=0.25
    )
    np.testing.assert_allclose([out["g1"][0], out["g2"][0]], [-0.2, 0.35], atol=2e-4)


def test_features_carry_no_gradient_to_the_input():
    img = jnp.asarray(sheared_gaussian(53, 2.0, 0.1, 0.1)[None], jnp.float32)
    grad = jax.grad(lambda x: moment_features(x, PSF_PX).sum())(img)
    assert float(jnp.abs(grad).max()) == 0.0

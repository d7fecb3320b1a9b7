"""PSFNet: its output turns as a shear, and its PSF input deconvolves as the moments predict."""

from __future__ import annotations

import galsim
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from shearbridge.models.moments import distortion_to_shear
from shearbridge.models.psfnet import PSFNet, iso_kernel
from shearbridge.sim.population import PopulationConfig, draw_population, render_population
from shearbridge.train.augment import D4, d4_images, d4_shear

SCALE = 0.141


def _noisy_set(n=48, seed=0):
    cfg = PopulationConfig()
    lab = draw_population(
        cfg, n, np.random.default_rng(seed), galaxies=["exp", "gauss"], psfs=["moffat", "gauss"]
    )
    stamps, psfs = render_population(cfg, lab)
    sigma = np.full(n, 1e-3, np.float32)
    stamps = (
        stamps + np.random.default_rng(seed + 1).normal(size=stamps.shape).astype(np.float32) * 1e-3
    )
    return stamps, psfs, sigma, np.c_[lab["g1"], lab["g2"]]


def _random_readout(params, seed=3):
    """Parameters whose MLP read-out is not zero, so the test covers the learned part too."""
    p = dict(params["params"])
    p["out"] = {
        "kernel": jax.random.normal(jax.random.PRNGKey(seed), p["out"]["kernel"].shape) * 0.01,
        "bias": p["out"]["bias"],
    }
    return {"params": p}


@pytest.mark.pipeline
def test_iso_kernel_has_the_symmetry_of_the_square():
    k = np.asarray(iso_kernel(jax.random.normal(jax.random.PRNGKey(0), (3, 2, 4))))
    for turns, mirror in D4:
        assert_allclose(
            np.asarray(d4_images(jnp.moveaxis(k, (0, 1), (-2, -1)), turns, mirror)),
            np.moveaxis(k, (0, 1), (-2, -1)),
            atol=0,
        )


@pytest.mark.pipeline
def test_output_turns_as_a_spin_two_quantity_under_every_grid_symmetry():
    stamps, psfs, sigma, g = _noisy_set()
    model = PSFNet()
    params = model.init(jax.random.PRNGKey(0), stamps[:2], psfs[:2], sigma[:2])
    params = _random_readout(model.data_init(params, stamps, psfs, sigma, g))
    f = jax.jit(model.apply)
    ref = np.asarray(f(params, stamps, psfs, sigma))
    assert np.std(ref[:, 2]) > 1e-3  # the uncertainty varies, so its invariance is a real check
    for turns, mirror in D4[1:]:
        out = np.asarray(
            f(
                params,
                np.asarray(d4_images(stamps, turns, mirror)),
                np.asarray(d4_images(psfs, turns, mirror)),
                sigma,
            )
        )
        expect = np.asarray(d4_shear(jnp.asarray(ref[:, :2]), turns, mirror))
        assert_allclose(out[:, :2], expect, atol=2e-5)  # float32 round-off (float64: 1e-12)
        assert_allclose(out[:, 2], ref[:, 2], atol=2e-5)


def _gauss_pair(psf: galsim.GSObject, g=(0.2, 0.1), sigma=0.4):
    gal = galsim.Gaussian(sigma=sigma).shear(g1=g[0], g2=g[1])
    return galsim.Convolve(gal, psf).drawImage(nx=53, ny=53, scale=SCALE, dtype=np.float64).array


def _psf_image(psf: galsim.GSObject) -> np.ndarray:
    return psf.drawImage(nx=53, ny=53, scale=SCALE, dtype=np.float64).array


def _cov(sigma_arcsec, g=(0.0, 0.0)):
    """Covariance (px^2) of a Gaussian of sigma ``sigma_arcsec`` sheared by ``g``.

    The pixel is not included.
    """
    s = galsim.Shear(g1=g[0], g2=g[1])
    m = s.getMatrix() * (sigma_arcsec / SCALE)
    return m @ m.T


@pytest.mark.parametrize(
    "told_fwhm, told_g", [(0.6, (0.0, 0.0)), (0.8, (0.0, 0.0)), (0.6, (0.04, -0.03))]
)
@pytest.mark.pipeline
def test_changing_the_psf_input_moves_the_estimate_as_deconvolution_predicts(told_fwhm, told_g):
    """One Gaussian galaxy seen through a round Gaussian PSF of FWHM 0.6", told PSFs of other sizes
    and shapes: the estimate is the shape of (observed covariance - told PSF covariance), as moments
    predict."""
    true_psf = galsim.Gaussian(fwhm=0.6)
    stamp = _gauss_pair(true_psf)[None].astype(np.float32)
    told = galsim.Gaussian(fwhm=told_fwhm).shear(g1=told_g[0], g2=told_g[1])
    model = PSFNet()
    sigma = np.full(1, 1e-5, np.float32)
    params = model.init(jax.random.PRNGKey(0), stamp, stamp, sigma)
    params["params"]["g_scale"] = jnp.asarray([1.0, 0.0])  # the matched-weight moments alone
    out = np.asarray(model.apply(params, stamp, _psf_image(told)[None].astype(np.float32), sigma))[
        0
    ]
    pix = np.eye(2) / 12.0
    observed = _cov(0.4, (0.2, 0.1)) + _cov(0.6 / 2.3548) + pix
    deconvolved = observed - (_cov(told_fwhm / 2.3548, told_g) + pix)
    expect = np.asarray(
        distortion_to_shear(deconvolved[0, 0], deconvolved[0, 1], deconvolved[1, 1])
    )
    assert_allclose(out[:2], expect, atol=2e-3)
    if told_fwhm == 0.6 and told_g == (0.0, 0.0):
        assert_allclose(out[:2], [0.2, 0.1], atol=2e-3)  # the right PSF gives the true shape
    else:
        assert np.max(np.abs(out[:2] - [0.2, 0.1])) > 5e-3  # and a wrong one moves it


@pytest.mark.pipeline
def test_data_init_starts_at_the_moments_estimator_with_unit_scale_on_gaussians():
    stamps, psfs, sigma, g = _noisy_set(64, seed=4)
    model = PSFNet()
    params = model.data_init(
        model.init(jax.random.PRNGKey(0), stamps[:2], psfs[:2], sigma[:2]), stamps, psfs, sigma, g
    )
    assert abs(float(np.sum(params["params"]["g_scale"])) - 1.0) < 0.1
    pred = np.asarray(model.apply(params, stamps, psfs, sigma))
    rms = np.sqrt(np.mean((pred[:, :2] - g) ** 2))
    assert rms < 0.05 and abs(np.exp(pred[0, 2]) - rms) < rms  # starts at the rms residual


def test_bad_shapes_are_refused():
    model = PSFNet()
    x = np.zeros((2, 52, 52), np.float32)
    with pytest.raises(ValueError, match="S odd"):
        model.init(jax.random.PRNGKey(0), x, x, np.ones(2, np.float32))


@pytest.mark.pipeline
def test_estimates_stay_on_the_unit_disk():
    """A reduced shear has |g| < 1: the analytic features and the output are pulled radially onto
    the disk (a spin-2-safe map), unchanged inside it; even a wild read-out cannot leave it."""
    from shearbridge.models.psfnet import unit_disk

    assert_allclose(
        np.asarray(unit_disk(jnp.asarray([[0.3, -0.4], [3.0, 4.0]]))),
        [[0.3, -0.4], [0.6, 0.8]],
        rtol=1e-6,
    )
    stamps, psfs, sigma, _ = _noisy_set(16)
    model = PSFNet(channels=(2,), dilations=(1,), hidden=8, head_layers=1)
    params = model.init(jax.random.PRNGKey(0), stamps[:2], psfs[:2], sigma[:2])
    wild = _random_readout(params)
    wild["params"]["out"]["kernel"] = wild["params"]["out"]["kernel"] * 1e4
    g = np.asarray(model.apply(wild, stamps, psfs, sigma))[:, :2]
    assert np.all(np.hypot(g[:, 0], g[:, 1]) <= 1.0 + 1e-6) and np.any(
        np.hypot(g[:, 0], g[:, 1]) > 0.99
    )

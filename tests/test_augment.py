"""D4 augmentation moves the label as a spin-2 quantity; fresh noise never repeats a field."""

from __future__ import annotations

import pytest

import galsim
import jax
import jax.numpy as jnp
import numpy as np
from numpy.testing import assert_allclose

from shearbridge.train.augment import D4, d4_images, d4_shear, fresh_noise, random_d4


def _chi(img: np.ndarray) -> np.ndarray:
    """Unweighted-moment ellipticity (x the column, y the row index, GalSim's convention)."""
    y, x = np.indices(img.shape, dtype=np.float64)
    w = img / img.sum()
    xc, yc = (w * x).sum(), (w * y).sum()
    ixx, iyy, ixy = (
        (w * (x - xc) ** 2).sum(),
        (w * (y - yc) ** 2).sum(),
        (w * (x - xc) * (y - yc)).sum(),
    )
    return np.array([ixx - iyy, 2 * ixy]) / (ixx + iyy)


def _galaxy() -> np.ndarray:
    gal = galsim.Gaussian(sigma=0.6).shear(g1=0.21, g2=-0.13)
    return gal.drawImage(nx=53, ny=53, scale=0.141, dtype=np.float64).array


def test_every_element_moves_the_shear_as_spin_two():
    img = _galaxy()
    chi = _chi(img)
    assert np.all(np.abs(chi) > 0.1)
    seen = set()
    for k, mirror in D4:
        out = np.asarray(d4_images(jnp.asarray(img), k, mirror))
        assert_allclose(_chi(out), np.asarray(d4_shear(jnp.asarray(chi), k, mirror)), atol=1e-12)
        seen.add(tuple(np.sign(_chi(out)).astype(int)))
    assert len(seen) == 4  # the four sign patterns of (g1, g2) all occur


@pytest.mark.pipeline
def test_random_d4_pairs_each_stamp_with_its_own_label():
    rng = np.random.default_rng(0)
    imgs = jnp.asarray(rng.normal(size=(32, 7, 7)))
    g = jnp.asarray(rng.normal(size=(32, 2)))
    out, g_out = random_d4(jax.random.key(3), imgs, g)
    used = set()
    for b in range(32):
        match = [(k, m) for k, m in D4 if np.allclose(out[b], d4_images(imgs[b], k, m))]
        assert len(match) == 1
        assert_allclose(g_out[b], d4_shear(g[b], *match[0]))
        used.add(match[0])
    assert len(used) > 4  # the elements are drawn, not fixed


@pytest.mark.pipeline
def test_fresh_noise_is_reproducible_and_never_repeats():
    key, sigma = jax.random.key(11), jnp.asarray([0.01, 0.02, 0.03, 0.04])
    a = np.asarray(fresh_noise(key, 5, (4, 53, 53), sigma))
    assert_allclose(a, np.asarray(fresh_noise(key, 5, (4, 53, 53), sigma)))
    b = np.asarray(fresh_noise(key, 6, (4, 53, 53), sigma))
    unit = [a[i] / float(sigma[i]) for i in range(4)] + [b[i] / float(sigma[i]) for i in range(4)]
    corr = np.corrcoef(np.stack([u.ravel() for u in unit]))
    assert np.max(np.abs(corr - np.eye(8))) < 0.1  # eight different fields
    assert_allclose(a.reshape(4, -1).std(axis=1), np.asarray(sigma), rtol=0.05)

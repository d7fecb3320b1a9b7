"""The analytic (JVP) shear response against metacalibration's finite differences and against
finite differences on sheared GalSim renders."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.pipeline  # renders and compiles: about 1.5 min

galsim = pytest.importorskip("galsim")
jax = pytest.importorskip("jax")

from shearbridge.stats.analytic_response import analytic_response, fd_response  # noqa: E402
from shearbridge.stats.metacal_fourier import metacal_images  # noqa: E402

S, SCALE = 53, 0.141
PSF = galsim.Moffat(beta=2.5, fwhm=0.7)
SHAPES = [
    (0.1 * np.cos(a), 0.1 * np.sin(a), 0.2 + 0.04 * i) for i, a in enumerate(np.linspace(0, 3, 6))
]


def _render(g1: float, g2: float, sigma: float, dg=(0.0, 0.0)) -> np.ndarray:
    """An elliptical Gaussian, then sheared by ``dg`` (GalSim composes the shears, as lensing
    does: an intrinsic ellipticity plus a shear is not the sum of the two)."""
    gal = galsim.Gaussian(sigma=sigma, flux=3.0).shear(g1=g1, g2=g2).shear(g1=dg[0], g2=dg[1])
    return galsim.Convolve(gal, PSF).drawImage(nx=S, ny=S, scale=SCALE).array


def _stamps(dg=(0.0, 0.0)) -> np.ndarray:
    return np.stack([_render(g1, g2, s, dg) for g1, g2, s in SHAPES])


def _moments_estimator(psf_image: np.ndarray):
    """A differentiable estimator: adaptive moments corrected by the reconvolution PSF's."""
    import jax.numpy as jnp

    from shearbridge.models.moments import adaptive_moments, psf_covariance

    pcov = psf_covariance(jnp.asarray(psf_image)[None])

    def predict(x):
        cov = tuple(jnp.broadcast_to(c, (x.shape[0],)) for c in pcov)
        am = adaptive_moments(x, None, weight_fraction=1.0, psf_cov=cov)
        return jnp.stack([am["g1"], am["g2"]], axis=-1)

    return predict


@pytest.fixture(scope="module")
def setup():
    psf_image = PSF.drawImage(nx=S, ny=S, scale=SCALE).array
    mc = metacal_images(_stamps(), psf_image)
    with jax.enable_x64(True):
        return psf_image, mc, _moments_estimator(mc.psf_image)


def test_the_jvp_response_equals_metacal_finite_differences(setup):
    with jax.enable_x64(True):
        _, mc, predict = setup
        g, r = analytic_response(predict, mc.noshear, mc.d1, mc.d2, dtype=np.float64)
        fd = fd_response(predict, mc.noshear, mc.d1, mc.d2, step=1e-3, dtype=np.float64)
    assert np.all(np.isfinite(g))
    # a real response: diagonal near one, off-diagonal small
    assert np.all(np.diagonal(r, axis1=1, axis2=2) > 0.3)
    assert np.max(np.abs(r - fd)) < 1e-3 * np.max(np.abs(r))


def test_the_jvp_response_equals_finite_differences_on_sheared_renders(setup):
    """GalSim renders sheared by +-h, through the same deconvolve-reconvolve (noshear): their
    central difference is the response the JVP gives at g = 0, to O(h^2) and metacal's accuracy."""
    psf_image, mc, predict = setup
    h = 0.005
    with jax.enable_x64(True):
        _, r = analytic_response(predict, mc.noshear, mc.d1, mc.d2, dtype=np.float64)
        for j in range(2):
            step = h * np.eye(2)[j]
            plus = metacal_images(_stamps(step), psf_image).noshear
            minus = metacal_images(_stamps(-step), psf_image).noshear
            fd = (np.asarray(predict(plus)) - np.asarray(predict(minus))) / (2 * h)
            assert np.max(np.abs(fd - r[:, :, j])) < 1e-3 * np.max(np.abs(r)), j


def test_an_estimator_with_stopped_gradients_is_refused(setup):
    _, mc, predict = setup

    def stopped(x):
        return predict(jax.lax.stop_gradient(x))

    with pytest.raises(ValueError, match="stop_gradient"):
        analytic_response(stopped, mc.noshear, mc.d1, mc.d2)


def test_bad_images_are_refused(setup):
    _, mc, predict = setup
    with pytest.raises(ValueError, match="shape"):
        analytic_response(predict, mc.noshear, mc.d1[:2], mc.d2)
    bad = mc.d1.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fd_response(predict, mc.noshear, bad, mc.d2)

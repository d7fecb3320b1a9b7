"""The JAX renderer against GalSim, analytic conventions and its own Jacobian."""

from __future__ import annotations

import math

import galsim
import numpy as np
import pytest

from shearbridge.estimators.render import Renderer, gaussian_psf_image

SCALE = 0.141  # arcsec / pixel (ShearNet)
SIZE = 53
PSF_SIGMA = 0.25  # arcsec
# GalSim's defaults are accurate to ~3e-6 of the peak for the largest galaxy here
# (its k-space accuracy settings); tightened, it is exact to ~1e-11.
GSP = galsim.GSParams(
    folding_threshold=1e-6, maxk_threshold=1e-8, kvalue_accuracy=1e-10, xvalue_accuracy=1e-10
)

THETAS = np.array(
    [
        # flux, x0 ["], y0 ["], size ["], g1, g2
        [3.0, 0.10, -0.15, 0.30, 0.20, -0.10],
        [1.0, 0.00, 0.00, 0.15, 0.50, 0.30],
        [4.0, -0.20, 0.05, 1.00, -0.40, 0.60],
        [2.0, 0.03, 0.17, 0.60, 0.00, 0.00],
    ]
)


def galsim_stamp(theta, model="gauss"):
    flux, x0, y0, size, g1, g2 = theta
    if model == "gauss":
        gal = galsim.Gaussian(sigma=size, flux=flux, gsparams=GSP)
    else:
        gal = galsim.Exponential(
            half_light_radius=size * math.sqrt(2 * math.log(2)), flux=flux, gsparams=GSP
        )
    obj = galsim.Convolve(
        gal.shear(g1=g1, g2=g2), galsim.Gaussian(sigma=PSF_SIGMA, gsparams=GSP), gsparams=GSP
    )
    return obj.drawImage(
        nx=SIZE, ny=SIZE, scale=SCALE, offset=(x0 / SCALE, y0 / SCALE), dtype=np.float64
    ).array


def galsim_psf():
    return (
        galsim.Gaussian(sigma=PSF_SIGMA, gsparams=GSP)
        .drawImage(nx=SIZE, ny=SIZE, scale=SCALE, dtype=np.float64)
        .array
    )


def nyquist_leak():
    """Transform of the effective PSF (Gaussian x pixel sinc) at the Nyquist frequency.

    Everything above Nyquist is what a band-limited DFT renderer cannot represent,
    so it bounds the renderer's error relative to the peak (up to O(1) factors).
    """
    k_nyq = math.pi / SCALE
    return math.exp(-0.5 * (PSF_SIGMA * k_nyq) ** 2) * np.sinc(0.5)


@pytest.mark.parametrize("model", ["gauss", "exp"])
@pytest.mark.parametrize("psf_kind", ["image", "analytic"])
def test_renderer_matches_galsim(model, psf_kind):
    # the exponential's heavy tail needs more zero padding than the default 128 px
    # for the 1"-sized, |g| = 0.72 galaxy (wrap-around 1.3e-6 of the peak at 128)
    n_pad = 256 if model == "exp" else None
    if psf_kind == "image":
        rend = Renderer.from_psf_image(galsim_psf(), SCALE, model=model, n_pad=n_pad)
    else:
        rend = Renderer.gaussian_psf(PSF_SIGMA, SCALE, SIZE, model=model, n_pad=n_pad)
    ours = rend.render(THETAS)
    tol = 10 * nyquist_leak()  # ~1e-6 of the peak
    for theta, img in zip(THETAS, ours):
        ref = galsim_stamp(theta, model)
        err = np.abs(img - ref).max() / ref.max()
        assert err < tol, f"{model}/{psf_kind} {theta}: max|diff|/peak {err:.2e} > {tol:.1e}"


def test_gaussian_psf_image_is_exact_pixel_integral():
    ours = gaussian_psf_image(PSF_SIGMA, SCALE, SIZE)
    np.testing.assert_allclose(ours.sum(), 1.0, rtol=1e-12)
    ref = galsim_psf()
    assert np.abs(ours - ref).max() / ref.max() < 10 * nyquist_leak()


def test_flux_and_integer_shift():
    rend = Renderer.gaussian_psf(PSF_SIGMA, SCALE, SIZE)
    base = np.array([2.5, 0.0, 0.0, 0.3, 0.1, 0.2])
    img = rend.render(base)
    np.testing.assert_allclose(img.sum(), 2.5, rtol=1e-9, err_msg="flux of a contained galaxy")
    shifted = rend.render(base + np.array([0, 2 * SCALE, -3 * SCALE, 0, 0, 0]))
    # +x0 moves along columns (array axis 1), +y0 along rows (axis 0), as GalSim offsets
    np.testing.assert_allclose(
        shifted, np.roll(np.roll(img, 2, axis=1), -3, axis=0), atol=1e-12 * img.max()
    )


def test_shear_convention():
    """+g1 stretches along x (columns), +g2 along the x = y diagonal."""
    rend = Renderer.gaussian_psf(PSF_SIGMA, SCALE, SIZE)
    c = (np.arange(SIZE) - (SIZE - 1) / 2) * SCALE
    x, y = np.meshgrid(c, c)

    def moments(img):
        w = img / img.sum()
        return (w * x * x).sum(), (w * y * y).sum(), (w * x * y).sum()

    ixx, iyy, ixy = moments(rend.render([1.0, 0, 0, 0.4, 0.2, 0.0]))
    assert ixx > iyy and abs(ixy) < 1e-12
    ixx, iyy, ixy = moments(rend.render([1.0, 0, 0, 0.4, 0.0, 0.2]))
    assert ixy > 0 and abs(ixx - iyy) < 1e-12


@pytest.mark.pipeline
@pytest.mark.parametrize("model", ["gauss", "exp"])
def test_analytic_jacobian_equals_autodiff(model):
    rend = Renderer.gaussian_psf(PSF_SIGMA, SCALE, SIZE, model=model)
    ja = rend.jacobian(THETAS, method="analytic")
    jb = rend.jacobian(THETAS, method="autodiff")
    assert ja.shape == (len(THETAS), 6, SIZE, SIZE)
    np.testing.assert_allclose(ja, jb, atol=1e-12 * np.abs(jb).max())


def test_renderer_rejects_bad_parameters():
    rend = Renderer.gaussian_psf(PSF_SIGMA, SCALE, SIZE)
    with pytest.raises(ValueError, match="g"):
        rend.render([1.0, 0, 0, 0.3, 0.8, 0.8])
    with pytest.raises(ValueError, match="size"):
        rend.render([1.0, 0, 0, -0.3, 0.0, 0.0])
    with pytest.raises(ValueError, match="6 columns"):
        rend.render([1.0, 0, 0, 0.3])
    with pytest.raises(ValueError, match="model"):
        Renderer.gaussian_psf(PSF_SIGMA, SCALE, SIZE, model="sersic")

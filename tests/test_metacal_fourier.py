"""Fourier-space metacalibration: the images against GalSim's exact ones, the calibration it
gives on the paired shear test, the noise fix, and bad input."""

from __future__ import annotations

import galsim
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from shearbridge.config import SimConfig
from shearbridge.estimators.base import EstimatorInputError
from shearbridge.models.moments import adaptive_moments
from shearbridge.sim import stamps as S
from shearbridge.stats.bias import paired_metacal_bias, paired_shear_bias
from shearbridge.stats.metacal_fourier import METACAL_STEP, metacal_images, reconvolution_sigma_px
from shearbridge.steps.metacal import fix_noise_fields

SCALE, SIZE = 0.141, 53


def _psf_image() -> np.ndarray:
    return (
        galsim.Gaussian(sigma=0.25).drawImage(nx=SIZE, ny=SIZE, scale=SCALE, dtype=np.float64).array
    )


def test_images_are_galsims_deconvolve_shear_reconvolve_to_first_order():
    """noshear and the shear derivatives equal GalSim's galaxy, sheared and convolved with the round
    reconvolution Gaussian (the exact metacal image of a noiseless stamp), to 1e-5 of the peak."""
    psf = galsim.Gaussian(sigma=0.25)
    gal = galsim.Gaussian(sigma=0.35, flux=1.0).shear(g1=0.2, g2=-0.1)
    img = galsim.Convolve(gal, psf).drawImage(nx=SIZE, ny=SIZE, scale=SCALE, dtype=np.float64).array
    mc = metacal_images(img[None], _psf_image())
    recon = galsim.Gaussian(sigma=mc.sigma_px * SCALE)

    def draw(g1, g2):
        return (
            galsim.Convolve(gal.shear(g1=g1, g2=g2), recon)
            .drawImage(nx=SIZE, ny=SIZE, scale=SCALE, method="no_pixel", dtype=np.float64)
            .array
        )

    h = 1e-5
    ref = {
        "noshear": draw(0, 0),
        "d1": (draw(h, 0) - draw(-h, 0)) / (2 * h),
        "d2": (draw(0, h) - draw(0, -h)) / (2 * h),
    }
    for name, want in ref.items():
        got = getattr(mc, name)[0]
        assert np.abs(got - want).max() < 1e-4 * np.abs(want).max(), name
    assert_allclose(
        mc.psf_image,
        recon.drawImage(nx=SIZE, ny=SIZE, scale=SCALE, method="no_pixel", dtype=np.float64).array,
        atol=1e-8,
    )
    assert mc.sigma_px == pytest.approx(reconvolution_sigma_px(_psf_image()))
    assert_allclose(mc.sheared(1, 1) - mc.sheared(1, -1), 2 * METACAL_STEP * mc.d1)


def test_fix_noise_adds_the_rotated_transform_of_its_field():
    rng = np.random.default_rng(3)
    x, nu = rng.normal(size=(2, 5, SIZE, SIZE))
    with_fix, without, fix_only = (
        metacal_images(x, _psf_image(), fix_noise=nu),
        metacal_images(x, _psf_image()),
        metacal_images(np.zeros_like(x), _psf_image(), fix_noise=nu),
    )
    for name in ("noshear", "d1", "d2"):
        assert_allclose(
            getattr(with_fix, name), getattr(without, name) + getattr(fix_only, name), atol=1e-12
        )
    # why it cancels: for a round PSF the rotated field's shear derivatives are minus the field's
    # own (a 90-degree turn flips both shear components), its noshear image the same
    direct = metacal_images(nu, _psf_image())
    # (to 1e-4 of the largest value: the PSF image is symmetric to round-off, which the
    # deconvolution amplifies where the PSF's transform is small)
    assert_allclose(fix_only.noshear, direct.noshear, atol=1e-4 * np.abs(direct.noshear).max())
    for name in ("d1", "d2"):
        want = -getattr(direct, name)
        assert_allclose(getattr(fix_only, name), want, atol=1e-4 * np.abs(want).max())


def test_calibration_on_the_paired_test_recovers_the_shear_of_noiseless_galaxies():
    """An estimator with a response far from one (adaptive moments told a PSF 20 per cent too
    small: under-deconvolved, so shrunk) is biased by several per cent raw; metacal takes it back
    to |m| < 1e-3 (the shear-composition term of order g^2 remains)."""
    sim = SimConfig(shear_test=True)
    labels = S.draw_population(sim, 8, np.random.default_rng(7))
    stamps = S.render_rows(sim, labels, range(len(labels["pair_id"])))
    psf = S.render_psf(sim)
    mc = metacal_images(stamps, psf)
    told = 0.8 * np.sqrt(mc.sigma_px**2 - 1 / 12)

    def shapes(images):
        out = adaptive_moments(jnp.asarray(images, jnp.float32), told, n_iter=8)
        return np.stack([np.asarray(out["g1"]), np.asarray(out["g2"])], axis=1).astype(np.float64)

    comp = labels["pair_id"] % 2 + 1
    idx = np.arange(len(comp))
    resp = (
        shapes(mc.along(comp, 1))[idx, comp - 1] - shapes(mc.along(comp, -1))[idx, comp - 1]
    ) / (2 * METACAL_STEP)
    res = paired_metacal_bias(shapes(mc.noshear), resp, labels, n_blocks=4)
    assert min(abs(res["m1_raw"]), abs(res["m2_raw"])) > 0.02
    assert abs(res["m1"]) < 1e-3 and abs(res["m2"]) < 1e-3
    # with R = 1 it is the uncalibrated test on the same images
    plain = paired_shear_bias(shapes(mc.noshear), labels, n_blocks=4)
    assert res["m1_raw"] == pytest.approx(plain["m1"], abs=1e-12)


def test_fix_noise_fields_are_shared_and_antithetic():
    sim = SimConfig(shear_test=True)
    labels = S.draw_population(sim, 3, np.random.default_rng(1))
    nu = fix_noise_fields(labels, (SIZE, SIZE), 0.01, root_seed=5)
    per = nu.reshape(3, 4, 2, 2, SIZE, SIZE)  # galaxy, orientation, sign, noise sign
    assert_allclose(per[:, :, 0], per[:, :, 1])  # +g and -g share the field
    assert_allclose(per[:, :, :, 0], -per[:, :, :, 1])  # +n and -n: opposite
    assert not np.allclose(per[:, 0, 0, 0], per[:, 1, 0, 0])  # orientations: independent fields
    assert_allclose(nu, fix_noise_fields(labels, (SIZE, SIZE), 0.01, root_seed=5))
    assert np.std(nu) == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize(
    "stamps, psf, match",
    [
        (np.zeros((2, 52, 52)), np.ones((52, 52)), "odd size"),
        (np.zeros((2, 53, 53)), np.ones((51, 51)), "53x53"),
        (np.full((2, 53, 53), np.nan), np.ones((53, 53)), "finite"),
        (np.zeros((53, 53)), np.ones((53, 53)), "shape"),
    ],
)
def test_bad_input_gets_one_clear_error(stamps, psf, match):
    with pytest.raises(EstimatorInputError, match=match):
        metacal_images(stamps, psf)


def test_elliptical_gaussian_psf_amplifies_no_noise(monkeypatch):
    """White noise through the metacal operations stays of order one (noshear below the input's
    sigma, the shear derivatives ~10) for an elliptical Gaussian PSF (|g| = 0.05, the
    population's largest): the round reconvolution PSF is wider than the PSF's long axis, and the
    frequencies where the PSF image's transform is its rendering error (below PSF_FLOOR of the
    peak) are dropped. Without the floor the derivatives' noise is thousands of times larger (the
    population's Gaussian-PSF metacal failed: median response ~0)."""
    from shearbridge.stats import metacal_fourier

    noise = np.random.default_rng(0).standard_normal((64, SIZE, SIZE))
    for sigma, g in ((0.25, 0.05), (0.38, 0.05), (0.30, 0.03)):
        img = (
            galsim.Gaussian(sigma=sigma)
            .shear(g1=0.6 * g, g2=0.8 * g)
            .drawImage(nx=SIZE, ny=SIZE, scale=SCALE, dtype=np.float64)
            .array
        )
        mc = metacal_images(noise, img)
        assert mc.noshear.std() < 1.0 and max(mc.d1.std(), mc.d2.std()) < 20.0, (sigma, g)
        with monkeypatch.context() as m:
            m.setattr(metacal_fourier, "PSF_FLOOR", 0.0)
            raw = metacal_images(noise, img)
        assert max(raw.d1.std(), raw.d2.std()) > 1000.0, (sigma, g)
    y, x = np.indices((SIZE, SIZE), dtype=np.float64)
    w = _psf_image() / _psf_image().sum()  # a round PSF: the major axis is the mean sigma
    mean_var = 0.5 * ((w * (x - (w * x).sum()) ** 2).sum() + (w * (y - (w * y).sum()) ** 2).sum())
    assert reconvolution_sigma_px(_psf_image()) == pytest.approx(
        (1 + 2 * METACAL_STEP) * np.sqrt(mean_var), rel=1e-6
    )  # drawn: not exactly round

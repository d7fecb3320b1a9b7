"""Finite-difference shear response (metacal images) and response calibration.

Truth: the adaptive moments of :mod:`shearbridge.models.moments` are exact for a Gaussian
galaxy convolved with a Gaussian PSF, and the metacal image of such a galaxy
sheared by ``delta`` is the galaxy with ellipticity ``Shear(delta) + Shear(g0)``
convolved with the dilated PSF. So each object's finite-difference response must
equal that of the shear-addition formula (:func:`shearbridge.sim.stamps.lensed_shear`).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from shearbridge.sim import stamps as simmod
from shearbridge.config import SimConfig
from shearbridge.stats.bias import paired_shear_bias
from shearbridge.stats.response import (
    SHEARED_TYPES,
    calibrate,
    finite_difference_response,
    response_from_estimates,
)
from shearbridge.steps.response import run_calibrated_bias
from shearbridge.models.moments import adaptive_moments

SIM = SimConfig()
DELTA = 0.01
PSF_PX = SIM.psf_sigma_arcsec / SIM.pixel_scale_arcsec
# the metacal reconvolution PSF is the pixelised PSF dilated by 1 + 2 delta: its variance
# (PSF plus the pixel's 1/12 px^2) grows by (1 + 2 delta)^2
DILATED_PSF_PX = float(np.sqrt((1 + 2 * DELTA) ** 2 * (PSF_PX**2 + 1 / 12) - 1 / 12))
# Accuracy of the moments on metacal images of noise-free stamps: the moments' own error
# on the originals (pixelisation, stamp truncation of the largest galaxies; ~5e-4 in g) is
# smooth in the shear and largely cancels in the +/- difference; measured <= 3e-3 per
# object in R and 1e-3 in the mean over 16 galaxies. Tolerances: twice those.
TOL_R_OBJECT = 6e-3
TOL_R_MEAN = 2e-3


def moments_g(psf_px: float, scale: float = 1.0):
    def predict(images: np.ndarray) -> np.ndarray:
        out = adaptive_moments(jnp.asarray(images, jnp.float32), psf_px, n_iter=8)
        return scale * np.stack([np.asarray(out["g1"]), np.asarray(out["g2"])], axis=1)

    return predict


def analytic_response(g1: np.ndarray, g2: np.ndarray, delta: float) -> np.ndarray:
    """(N, 2, 2) finite-difference response of the shear-addition formula."""
    out = np.empty((len(g1), 2, 2))
    for i in range(len(g1)):
        for j in range(2):
            step = np.zeros(2)
            step[j] = delta
            plus = simmod.lensed_shear(g1[i], g2[i], *step)
            minus = simmod.lensed_shear(g1[i], g2[i], *(-step))
            out[i, :, j] = (np.array(plus) - np.array(minus)) / (2 * delta)
    return out


@pytest.fixture(scope="module")
def gaussians():
    labels = simmod.draw_population(SIM, 16, np.random.default_rng(11))
    stamps = simmod.render_rows(SIM, labels, range(16)).astype(np.float32)
    return labels, stamps, simmod.render_psf(SIM)


def test_response_of_exact_moments_matches_shear_addition(gaussians):
    labels, stamps, psf = gaussians
    res = finite_difference_response(moments_g(DILATED_PSF_PX), stamps, psf, SIM.pixel_scale_arcsec,
                                     1e-6, delta=DELTA, fix_noise=False)
    truth = analytic_response(labels["g1"], labels["g2"], DELTA)
    np.testing.assert_allclose(res.per_object, truth, atol=TOL_R_OBJECT,
                               err_msg="per-object response differs from the shear-addition formula")
    np.testing.assert_allclose(res.R, truth.mean(axis=0), atol=TOL_R_MEAN)
    # the jackknife error reflects the galaxy-to-galaxy spread of the true response
    spread = truth.reshape(16, 4).std(axis=0, ddof=1) / np.sqrt(16)
    np.testing.assert_allclose(res.R_err.ravel(), spread, rtol=0.5, atol=1e-4)


def test_response_from_exactly_linear_estimates_is_recovered():
    rng = np.random.default_rng(3)
    g0 = rng.normal(0, 0.2, (50, 2))
    a = np.array([[0.8, 0.05], [-0.02, 0.9]])
    offset = np.array([0.003, -0.001])
    est = {}
    for t, (j, s) in zip(SHEARED_TYPES, ((0, 1), (0, -1), (1, 1), (1, -1))):
        shifted = g0.copy()
        shifted[:, j] += s * DELTA
        est[t] = shifted @ a.T + offset
    res = response_from_estimates(est, DELTA)
    np.testing.assert_allclose(res.R, a, atol=1e-12)
    np.testing.assert_allclose(res.R_err, 0.0, atol=1e-12)
    np.testing.assert_allclose(calibrate(g0 @ a.T, res.R), g0, atol=1e-12)


def test_calibrated_biased_estimator_has_m_consistent_with_zero():
    """A shrinking estimator (0.8 x exact moments): raw m ~ -0.2, calibrated m ~ 0."""
    sim = dataclasses.replace(SIM, shear_test=True)
    labels = simmod.draw_population(sim, 12, np.random.default_rng(5))
    stamps = simmod.render_rows(sim, labels, range(len(labels["g1"]))).astype(np.float32)
    psf = simmod.render_psf(sim)
    raw_est = moments_g(PSF_PX, scale=0.8)(stamps)
    raw = paired_shear_bias(raw_est, labels, n_blocks=12)
    res = finite_difference_response(moments_g(DILATED_PSF_PX, scale=0.8), stamps, psf,
                                     sim.pixel_scale_arcsec, 1e-6, delta=DELTA, fix_noise=False,
                                     n_blocks=12)
    cal = paired_shear_bias(calibrate(raw_est, res.R), labels, n_blocks=12)
    for k in (1, 2):
        assert abs(raw[f"m{k}"] + 0.2) < 0.05, raw  # the shrinkage is seen before calibration
        assert abs(raw[f"m{k}"]) > 5 * raw[f"m{k}_err"], raw
        r, r_err = res.R[k - 1, k - 1], res.R_err[k - 1, k - 1]
        err = np.hypot(cal[f"m{k}_err"], (1 + raw[f"m{k}"]) * r_err / r**2)
        assert abs(cal[f"m{k}"]) < 3 * err, (k, cal[f"m{k}"], err)


def test_bad_input_raises_one_clear_error():
    with pytest.raises(ValueError, match="missing"):
        response_from_estimates({"1p": np.zeros((3, 2))}, DELTA)
    with pytest.raises(ValueError, match="invertible"):
        calibrate(np.zeros((3, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="calibrated method"):
        run_calibrated_bias("mlfit_cal", None, 1e-5)
    with pytest.raises(ValueError, match="step"):
        finite_difference_response(lambda x: x, np.zeros((2, 53, 53)), np.ones((53, 53)), 0.141, 1e-5,
                                   delta=0.5, fix_noise=False)


def test_precomputed_sheared_images_give_the_same_response(gaussians):
    from shearbridge.stats.response import sheared_images

    _, stamps, psf = gaussians
    kw = dict(delta=DELTA, fix_noise=False)
    sets, _ = sheared_images(stamps, psf, SIM.pixel_scale_arcsec, 1e-6, **kw)
    predict = moments_g(DILATED_PSF_PX)
    made = finite_difference_response(predict, stamps, psf, SIM.pixel_scale_arcsec, 1e-6, **kw)
    given = finite_difference_response(predict, stamps, psf, SIM.pixel_scale_arcsec, 1e-6, **kw, sets=sets)
    np.testing.assert_array_equal(made.R, given.R)
    with pytest.raises(ValueError, match="not one per stamp"):
        finite_difference_response(predict, stamps, psf, SIM.pixel_scale_arcsec, 1e-6, **kw,
                                   sets={t: v[:3] for t, v in sets.items()})


def test_response_images_are_made_once_and_reused(tmp_path, monkeypatch):
    from shearbridge.config import Profile
    from shearbridge.sim.datasets import generate_dataset
    from shearbridge.steps import response as resp

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    profile = Profile(name="tiny", noise_grid=(1e-4,), n_train=64, n_test=64, n_crlb=8, n_shear_pairs=4)
    generate_dataset("shear", profile, workers=1, progress=False)
    sets, seed = resp.response_images(profile, 1e-4, n_response=10)  # rounded to 8 (whole galaxies)
    assert resp.response_images_path(profile, 1e-4).exists()
    assert all(v.shape == (8, 53, 53) and v.dtype == np.float32 for v in sets.values())

    def no_remake(*args, **kwargs):
        raise AssertionError("the kept images should have been used")

    monkeypatch.setattr(resp, "sheared_images", no_remake)
    again, seed2 = resp.response_images(profile, 1e-4, n_response=8)
    assert seed2 == seed
    for t in SHEARED_TYPES:
        np.testing.assert_array_equal(again[t], sets[t])
    with pytest.raises(AssertionError, match="kept images"):  # another stamp count: remade
        resp.response_images(profile, 1e-4, n_response=4)


def test_reference_moments_response_is_the_shear_addition_response(gaussians):
    from shearbridge.stats.response import moments_response, sheared_images

    labels, stamps, psf = gaussians
    sets, _ = sheared_images(stamps, psf, SIM.pixel_scale_arcsec, 1e-6, delta=DELTA, fix_noise=False)
    ref = moments_response(sets, SIM, n_blocks=16)
    truth = analytic_response(labels["g1"], labels["g2"], DELTA)
    np.testing.assert_allclose(ref.R, truth.mean(axis=0), atol=TOL_R_MEAN)

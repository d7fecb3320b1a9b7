"""The JAX maximum-likelihood fitter: exact recovery without noise, CRLB efficiency with it.

Stamps are drawn with GalSim exactly as ShearNet's 2025 simulator does (Gaussian
galaxy sheared by g, Gaussian PSF sigma 0.25", 0.141" pixels, 53 x 53, offsets
U(+-0.2") as drawImage offsets, default GSParams, pixel response included), from
ShearNet's label distribution, in float64.
"""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from shearbridge.estimators.base import EstimatorInputError
from shearbridge.stats.crlb import crlb_for_dataset
from shearbridge.estimators.mlfit import MLFitEstimator, eta_to_g, g_to_eta

SCALE = 0.141
SIZE = 53
PSF_SIGMA = 0.25
BATCH = 64  # one compilation shared by the fast tests
SIM = dict(
    galaxy="gauss",
    psf="gauss",
    psf_sigma_arcsec=PSF_SIGMA,
    psf_fwhm_arcsec=0.7,
    moffat_beta=2.5,
    pixel_scale_arcsec=SCALE,
    stamp_size_px=SIZE,
)


def shearnet_labels(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    g = rng.normal(0.0, 0.26, (4 * n, 2))
    g = g[np.hypot(g[:, 0], g[:, 1]) < 1][:n]
    s = np.abs(rng.normal(0.0, 0.5, 8 * n))
    s = s[s > 0.14][:n]
    return {
        "g1": g[:, 0],
        "g2": g[:, 1],
        "size_arcsec": s,
        "flux": rng.uniform(1, 5, n),
        "dx_arcsec": rng.uniform(-0.2, 0.2, n),
        "dy_arcsec": rng.uniform(-0.2, 0.2, n),
    }


def draw(labels: dict[str, np.ndarray], model: str = "gauss") -> tuple[np.ndarray, np.ndarray]:
    psf = galsim.Gaussian(sigma=PSF_SIGMA)
    out = []
    for i in range(len(labels["g1"])):
        if model == "gauss":
            gal = galsim.Gaussian(sigma=labels["size_arcsec"][i], flux=labels["flux"][i])
        else:
            hlr = labels["size_arcsec"][i] * np.sqrt(2 * np.log(2))
            gal = galsim.Exponential(half_light_radius=hlr, flux=labels["flux"][i])
        obj = galsim.Convolve(gal.shear(g1=labels["g1"][i], g2=labels["g2"][i]), psf)
        out.append(
            obj.drawImage(
                nx=SIZE,
                ny=SIZE,
                scale=SCALE,
                dtype=np.float64,
                offset=(labels["dx_arcsec"][i] / SCALE, labels["dy_arcsec"][i] / SCALE),
            ).array
        )
    psf_img = psf.drawImage(nx=SIZE, ny=SIZE, scale=SCALE, dtype=np.float64).array
    return np.array(out), psf_img


@pytest.fixture(scope="module")
def fitter() -> MLFitEstimator:
    return MLFitEstimator(model="gauss", batch_size=BATCH)


def test_eta_g_roundtrip():
    g = np.array([[0.0, 0.0], [1e-5, -2e-5], [0.3, -0.4], [-0.95, 0.2]])
    eta = np.array(g_to_eta(g[:, 0], g[:, 1]))
    back = np.array(eta_to_g(eta[0], eta[1])).T
    np.testing.assert_allclose(back, g, atol=1e-12)


@pytest.mark.pipeline
def test_noise_free_recovery_to_1e5(fitter):
    """Noise-free GalSim stamps (default GSParams) are fitted to |g_hat - g| < 1e-5."""
    labels = shearnet_labels(np.random.default_rng(1), BATCH)
    stamps, psf = draw(labels)
    res = fitter.measure(stamps, psf, SCALE, noise_sigma=1e-5)
    assert np.all(res.flags == 0), np.bincount(res.flags)
    err = np.maximum(np.abs(res.g1 - labels["g1"]), np.abs(res.g2 - labels["g2"]))
    assert err.max() < 1e-5, f"max |dg| = {err.max():.2e}"
    np.testing.assert_allclose(res.size, labels["size_arcsec"], rtol=1e-4)
    np.testing.assert_allclose(res.flux, labels["flux"], rtol=1e-4)
    np.testing.assert_allclose(res.extra["x0"], labels["dx_arcsec"], atol=1e-5)


def _crlb_efficiency(fitter, noise, n, seed):
    labels = shearnet_labels(np.random.default_rng(seed), n)
    stamps, psf = draw(labels)
    rng = np.random.default_rng(seed + 1)
    res = fitter.measure(stamps + rng.normal(0.0, noise, stamps.shape), psf, SCALE, noise)
    bound = crlb_for_dataset(labels, SIM, noise)
    ok = res.flags == 0
    z = np.concatenate(
        [
            (res.g1 - labels["g1"])[ok] / bound["sigma_g1"][ok],
            (res.g2 - labels["g2"])[ok] / bound["sigma_g2"][ok],
        ]
    )
    rmse = np.sqrt(
        np.mean(
            np.concatenate([(res.g1 - labels["g1"])[ok] ** 2, (res.g2 - labels["g2"])[ok] ** 2])
        )
    )
    rms_crlb = np.sqrt(
        np.mean(np.concatenate([bound["sigma_g1"][ok] ** 2, bound["sigma_g2"][ok] ** 2]))
    )
    return z, rmse / rms_crlb, ok


@pytest.mark.pipeline
def test_scatter_matches_crlb_at_high_snr(fitter):
    """At noise 1e-4 the ML fit is efficient: (g_hat - g) / sigma_CRLB has unit variance."""
    z, ratio, ok = _crlb_efficiency(fitter, 1e-4, 4 * BATCH, seed=2)
    assert ok.mean() > 0.98
    # the sample std of m unit-variance values has standard error 1/sqrt(2 m)
    tol = 4.0 / np.sqrt(2 * z.size)
    assert abs(np.std(z) - 1.0) < tol, f"std(z) = {np.std(z):.3f}, RMSE/RMS-CRLB = {ratio:.3f}"
    assert abs(np.mean(z)) < 4.0 / np.sqrt(z.size)


@pytest.mark.slow
@pytest.mark.parametrize("noise", [1e-5, 1e-3])
def test_scatter_matches_crlb_at_shearnet_noise(fitter, noise):
    z, ratio, ok = _crlb_efficiency(fitter, noise, 8 * BATCH, seed=3)
    tol = 4.0 / np.sqrt(2 * z.size)
    assert abs(np.std(z) - 1.0) < tol, f"std(z) = {np.std(z):.3f}, ratio {ratio:.3f}"


@pytest.mark.slow
def test_exponential_noise_free_recovery():
    labels = shearnet_labels(np.random.default_rng(4), 32)
    labels["size_arcsec"] = np.minimum(labels["size_arcsec"], 0.8)  # keep the tail in the stamp
    stamps, psf = draw(labels, model="exp")
    res = MLFitEstimator(model="exp", batch_size=32, n_iter=8).measure(stamps, psf, SCALE, 1e-5)
    err = np.maximum(np.abs(res.g1 - labels["g1"]), np.abs(res.g2 - labels["g2"]))
    assert np.all(res.flags == 0) and err.max() < 1e-5, err.max()


@pytest.mark.slow
def test_multiple_tries_keep_the_best():
    labels = shearnet_labels(np.random.default_rng(5), 16)
    stamps, psf = draw(labels)
    res = MLFitEstimator(n_try=3, seed=9, batch_size=16).measure(stamps, psf, SCALE, 1e-5)
    err = np.maximum(np.abs(res.g1 - labels["g1"]), np.abs(res.g2 - labels["g2"]))
    assert err.max() < 1e-5


def test_misuse_raises_and_failure_is_flagged(fitter):
    labels = shearnet_labels(np.random.default_rng(6), 2)
    stamps, psf = draw(labels)
    bad = stamps.copy()
    bad[0, 3, 3] = np.nan
    with pytest.raises(EstimatorInputError, match="NaN"):
        fitter.measure(bad, psf, SCALE, 1e-5)
    with pytest.raises(EstimatorInputError, match="noise_sigma"):
        fitter.measure(stamps, psf, SCALE, 0.0)
    with pytest.raises(EstimatorInputError, match="does not match"):
        fitter.measure(stamps, psf[1:, 1:], SCALE, 1e-5)
    with pytest.raises(ValueError, match="seed"):
        MLFitEstimator(n_try=2)
    # a blank stamp is a failed fit, reported by flags, not an exception
    blank = np.zeros((BATCH, SIZE, SIZE))
    blank[1:] = draw(shearnet_labels(np.random.default_rng(7), BATCH - 1))[0]
    res = fitter.measure(blank, psf, SCALE, 1e-5)
    assert res.flags[0] != 0 and np.all(res.flags[1:] == 0)

"""Tests of the ngmix adapter (``shearbridge.estimators.ngmix_adapter``).

ngmix is conda-forge only (not on PyPI), so the tests that run it skip where it is
not installed; the missing-package path, input checks and the metacal ensemble
algebra run everywhere. Stamps are drawn with GalSim exactly as the simulator does:
``galsim.<Profile>(...).shear(g1=, g2=)`` convolved with a Gaussian PSF
(sigma 0.25 arcsec), ``drawImage`` with the pixel response, 53 x 53 pixels of
0.141 arcsec, offsets in arcsec.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from shearbridge.estimators.base import EstimatorInputError, EstimatorResult
from shearbridge.estimators.ngmix_adapter import (
    NgmixMetacalEstimator,
    NgmixMLEstimator,
    NgmixUnavailable,
    ensemble_shear,
    import_ngmix,
    metacal_response,
)

galsim = pytest.importorskip("galsim")

try:
    import_ngmix()
    HAVE_NGMIX = True
except NgmixUnavailable:
    HAVE_NGMIX = False
NO_NGMIX_REASON = "ngmix not installed (conda-forge only: conda install -c conda-forge ngmix)"
_skip_without_ngmix = pytest.mark.skipif(not HAVE_NGMIX, reason=NO_NGMIX_REASON)


def needs_ngmix(test):
    """Mark a test ``ngmix`` (see pyproject.toml) and skip it where ngmix is missing."""
    return pytest.mark.ngmix(_skip_without_ngmix(test))


SCALE = 0.141  # arcsec / pixel
SIZE = 53  # pixels
PSF_SIGMA = 0.25  # arcsec
PSF = galsim.Gaussian(sigma=PSF_SIGMA)
MOFFAT = galsim.Moffat(beta=2.5, fwhm=0.7)  # the simulator's LSST-like robustness PSF


def draw(g1, g2, sigma, flux, dx=0.0, dy=0.0, model="gauss", psf=PSF):
    """A PSF-convolved, pixelised stamp; ``sigma`` is the label size in arcsec."""
    if model == "gauss":
        gal = galsim.Gaussian(sigma=sigma, flux=flux)
    else:
        gal = galsim.Exponential(half_light_radius=sigma * math.sqrt(2 * math.log(2)), flux=flux)
    obj = galsim.Convolve(gal.shear(g1=g1, g2=g2), psf)
    return obj.drawImage(nx=SIZE, ny=SIZE, scale=SCALE, offset=(dx / SCALE, dy / SCALE)).array


def psf_image(psf=PSF):
    return psf.drawImage(nx=SIZE, ny=SIZE, scale=SCALE).array


def shearnet_population(rng, n):
    """ShearNet 2025 labels: g ~ N(0, 0.26) with |g| < 1, sigma half-normal(0.5) > 0.14."""
    rows = []
    while len(rows) < n:
        g = rng.normal(0.0, 0.26, 2)
        s = abs(rng.normal(0.0, 0.5))
        if np.hypot(*g) < 1 and s > 0.14:
            rows.append((g[0], g[1], s, rng.uniform(1, 5), *rng.uniform(-0.2, 0.2, 2)))
    return np.array(rows)


# --------------------------------------------------------------- runs everywhere


def test_missing_ngmix_raises_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ngmix", None)  # makes `import ngmix` fail
    monkeypatch.setitem(sys.modules, "ngmix.metacal", None)
    with pytest.raises(NgmixUnavailable, match="conda-forge") as info:
        import_ngmix()
    assert isinstance(info.value, ImportError)
    est = NgmixMLEstimator("gauss", seed=0)  # constructing needs no ngmix
    stamp = draw(0.1, 0.0, 0.4, 2.0)
    with pytest.raises(NgmixUnavailable, match="not on PyPI"):
        est.measure(stamp[None], psf_image(), SCALE, 1e-3)
    with pytest.raises(NgmixUnavailable):
        NgmixMetacalEstimator("gauss", seed=0).measure(stamp[None], psf_image(), SCALE, 1e-3)


def test_importing_the_adapter_does_not_import_ngmix():
    code = (
        "import sys, shearbridge.estimators.ngmix_adapter as m; "
        "assert 'ngmix' not in sys.modules; print(issubclass(m.NgmixUnavailable, ImportError))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(model="sersic"),
        dict(psf_model="moffat"),
        dict(ntry=0),
        dict(seed=-1),
        dict(seed=1.5),
        dict(min_s2n=-1.0),
        dict(psf_model="em3"),
    ],
)
def test_bad_settings_raise_value_error(kwargs):
    args = dict(model="gauss", seed=0) | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        NgmixMLEstimator(**args)


@pytest.mark.parametrize("kwargs", [dict(step=0.0), dict(step=0.5), dict(metacal_psf="dilate")])
def test_bad_metacal_settings_raise_value_error(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        NgmixMetacalEstimator("gauss", seed=0, **kwargs)


def test_malformed_inputs_raise_before_any_fit():
    stamps = np.stack([draw(0.1, 0.0, 0.4, 2.0)] * 2)
    stamps[1, 3, 3] = np.nan
    with pytest.raises(EstimatorInputError, match="NaN"):
        NgmixMLEstimator("gauss", seed=0).measure(stamps, psf_image(), SCALE, 1e-3)
    with pytest.raises(EstimatorInputError, match="noise_sigma"):
        NgmixMLEstimator("gauss", seed=0).measure(stamps[:1], psf_image(), SCALE, 0.0)


def test_ensemble_shear_inverts_a_known_response():
    """Synthetic metacal output with known R and shear: R and R^-1 <g> come back."""
    rng = np.random.default_rng(7)
    n, shear = 4000, np.array([0.02, -0.01])
    R_true = np.array([[0.7, 0.05], [-0.03, 0.6]])
    R = R_true + rng.normal(0.0, 0.05, (n, 2, 2))
    g = shear @ R_true.T + rng.normal(0.0, 0.2, (n, 2))
    flags = np.zeros(n, dtype=np.int64)
    flags[:10] = 16
    g[:10] = 50.0  # flagged garbage must be ignored
    res = EstimatorResult(g1=g[:, 0], g2=g[:, 1], flags=flags, extra={"R": R, "g_noshear": g})
    R_err = 0.05 / math.sqrt(n - 10)
    np.testing.assert_allclose(metacal_response(res), R_true, atol=5 * R_err)
    est, err = ensemble_shear(res)
    expected_err = np.sqrt(np.diag(np.linalg.inv(R_true) @ np.linalg.inv(R_true).T)) * 0.2
    np.testing.assert_allclose(err, expected_err / math.sqrt(n - 10), rtol=0.1)
    assert np.all(np.abs(est - shear) < 4 * err), (est, err)
    with pytest.raises(ValueError, match="metacal"):
        metacal_response(EstimatorResult(g1=g[:, 0], g2=g[:, 1]))


# ------------------------------------------------------------------ needs ngmix


@needs_ngmix
@pytest.mark.parametrize("psf", [PSF, MOFFAT], ids=["gauss_psf", "moffat_psf"])
@pytest.mark.parametrize(
    "truth",  # g1, g2, sigma (arcsec), flux, dx, dy (arcsec)
    [
        (0.2, 0.0, 0.4, 3.0, 0.05, -0.1),
        (0.0, -0.3, 0.3, 2.0, -0.15, 0.1),
        (-0.1, 0.15, 0.9, 4.0, 0.0, 0.0),
        (0.5, 0.3, 0.15, 1.5, 0.2, 0.2),
    ],
)
def test_noise_free_gaussian_recovers_labels(truth, psf):
    """Noise-free stamp, correct model. With the noise declared as the project's lowest
    (sigma_n = 1e-5), ``pars_cov_fisher`` is the Cramer-Rao error there. g (both signs,
    both components) must match the label within half of it, offset, size and flux
    within one (flux and size for the Gaussian PSF only). A wrong sign, axis swap,
    centre or T -> sigma conversion would be off by orders of magnitude more; the
    remaining systematic (the pixelised PSF modelled by 3 Gaussians) stays below the
    statistical floor."""
    g1, g2, sigma, flux, dx, dy = truth
    stamp = draw(*truth, psf=psf)[None]
    res = NgmixMLEstimator("gauss", seed=1).measure(stamp, psf_image(psf), SCALE, 1e-5)
    assert res.flags[0] == 0
    err_g = res.extra["g_err_fisher"][0]
    cov = res.extra["pars_cov_fisher"][0]
    for est, true, err in [(res.g1[0], g1, err_g[0]), (res.g2[0], g2, err_g[1])]:
        assert err < 1e-3
        assert abs(est - true) < 0.5 * err, (est, true, err)
        if true != 0:
            assert np.sign(est) == np.sign(true)
    np.testing.assert_allclose(
        res.extra["offset_arcsec"][0], [dx, dy], atol=math.sqrt(max(cov[0, 0], cov[1, 1]))
    )
    if psf is MOFFAT:
        return  # 3 Gaussians miss the Moffat wings: flux -1.3 %, size up to +0.3 %
    np.testing.assert_allclose(res.flux[0], flux, atol=math.sqrt(cov[5, 5]))
    size_err = sigma * math.sqrt(cov[4, 4]) / (2 * res.extra["T"][0])  # d sigma = sigma dT / 2T
    np.testing.assert_allclose(res.size[0], sigma, atol=size_err)


@needs_ngmix
@pytest.mark.parametrize("model", ["gauss", "exp"])
def test_errors_are_calibrated_on_a_noisy_population(model):
    """ShearNet-like population at sigma_n = 1e-3: the pulls (g - g_true) / g_err have
    mean 0 and unit spread within their own sampling errors, for both models."""
    rng = np.random.default_rng(11)
    n, noise = 48, 1e-3
    truth = shearnet_population(rng, n)
    stamps = np.stack([draw(*t, model=model) for t in truth])
    stamps += rng.normal(0.0, noise, stamps.shape)
    res = NgmixMLEstimator(model, seed=3).measure(stamps, psf_image(), SCALE, noise)
    ok = res.ok
    assert ok.sum() >= n - 2, res.flags
    pull = ((res.g - truth[:, :2]) / res.extra["g_err_fisher"])[ok].ravel()
    m = pull.size
    assert abs(pull.mean()) < 4 / math.sqrt(m), pull.mean()
    assert abs(pull.std() - 1) < 4 / math.sqrt(2 * m), pull.std()


@needs_ngmix
def test_garbage_stamps_are_flagged_not_raised():
    rng = np.random.default_rng(5)
    noise = 1e-3
    stamps = np.zeros((4, SIZE, SIZE))  # [0]: exact zeros
    stamps[1] = -np.abs(rng.normal(0.0, noise, (SIZE, SIZE)))  # only negative flux
    stamps[2:] = rng.normal(0.0, noise, (2, SIZE, SIZE))  # pure noise
    res = NgmixMLEstimator("gauss", seed=2, min_s2n=5.0).measure(stamps, psf_image(), SCALE, noise)
    assert len(res) == 4
    assert np.all(res.flags != 0), res.flags
    assert np.all(res.extra["s2n"][2:][np.isfinite(res.extra["s2n"][2:])] < 5)


@needs_ngmix
def test_metacal_response_matches_the_shear_addition_derivative():
    """For the ML fit of the correct model, the pre-PSF shape of a sheared galaxy is
    g = (g0 + s) / (1 + s* g0), so dg/ds1 = 1 - g0^2 (complex), dg/ds2 = i (1 + g0^2):
    R11 = 1 - Re g0^2, R22 = 1 + Re g0^2, R12 = R21 = -Im g0^2. Per object, metacal's
    finite-difference R must match this to 1 % (its measured numerical floor with
    lanczos15 interpolation is ~3e-3; a missing PSF or pixel treatment would be off
    by tens of percent). The resolution-factor form sigma_g^2 / (sigma_g^2 +
    sigma_psf^2) describes moments of the *convolved* image, not a deconvolving fit."""
    rng = np.random.default_rng(3)
    n = 6
    truth = [
        (*rng.normal(0, 0.1, 2), rng.uniform(0.2, 0.6), 3.0, *rng.uniform(-0.1, 0.1, 2))
        for _ in range(n)
    ]
    stamps = np.stack([draw(*t) for t in truth])
    est = NgmixMetacalEstimator("gauss", seed=4, metacal_psf="fitgauss", step=0.01)
    res = est.measure(stamps, psf_image(), SCALE, 1e-6)
    assert np.all(res.flags == 0), res.flags
    g0sq = (res.g1 + 1j * res.g2) ** 2
    R_pred = np.empty((n, 2, 2))
    R_pred[:, 0, 0], R_pred[:, 1, 1] = 1 - g0sq.real, 1 + g0sq.real
    R_pred[:, 0, 1] = R_pred[:, 1, 0] = -g0sq.imag
    np.testing.assert_allclose(res.extra["R"], R_pred, atol=0.01)
    R = metacal_response(res)
    assert R[0, 0] > 0 and R[1, 1] > 0
    np.testing.assert_allclose(res.extra["g_noshear"][:, 0], [t[0] for t in truth], atol=1e-3)


@needs_ngmix
def test_metacal_noise_field_follows_the_seed():
    """fixnoise draws a noise field per object from the seed: same seed, same result;
    another seed, another noise field and so (slightly) different shapes."""
    rng = np.random.default_rng(8)
    noise = 1e-3
    stamps = np.stack([draw(0.1, -0.2, 0.4, 3.0), draw(-0.3, 0.05, 0.3, 2.0)])
    stamps += rng.normal(0.0, noise, stamps.shape)
    a, b, c = (
        NgmixMetacalEstimator("gauss", seed=s).measure(stamps, psf_image(), SCALE, noise)
        for s in (1, 1, 2)
    )
    np.testing.assert_array_equal(a.extra["R"], b.extra["R"])
    np.testing.assert_array_equal(a.g, b.g)
    assert not np.array_equal(a.g, c.g)
    assert np.all(np.abs(a.g - c.g) < 3 * a.extra["g_cov"][:, [0, 1], [0, 1]] ** 0.5)


@needs_ngmix
def test_agrees_with_the_jax_ml_fit():
    """ngmix and the project's JAX ML fit maximise the same likelihood (they differ only
    in the PSF model: 3 fitted Gaussians vs the PSF image, worth <= 0.25 sigma at noise
    1e-5 and so <= 0.0025 sigma at 1e-3), so on the same noisy stamps they must agree to
    a small fraction of the statistical error; a convention mismatch (sign, axes,
    centre) would show as O(1) sigma. Their Fisher errors must agree too."""
    mlfit = pytest.importorskip("shearbridge.estimators.mlfit")
    rng = np.random.default_rng(21)
    n, noise = 24, 1e-3
    truth = shearnet_population(rng, n)
    stamps = np.stack([draw(*t) for t in truth]) + rng.normal(0.0, noise, (n, SIZE, SIZE))
    a = NgmixMLEstimator("gauss", seed=5).measure(stamps, psf_image(), SCALE, noise)
    b = mlfit.MLFitEstimator(model="gauss").measure(stamps, psf_image(), SCALE, noise)
    ok = a.ok & b.ok
    assert ok.sum() >= n - 2
    z = ((a.g - b.g) / a.extra["g_err_fisher"])[ok]
    assert np.all(np.abs(z) < 0.05), z
    np.testing.assert_allclose(a.extra["g_err_fisher"][ok, 0], b.extra["sigma_g1"][ok], rtol=0.01)
    np.testing.assert_allclose(a.extra["g_err_fisher"][ok, 1], b.extra["sigma_g2"][ok], rtol=0.01)
    size_err = a.size * np.sqrt(a.extra["pars_cov_fisher"][:, 4, 4]) / (2 * a.extra["T"])
    assert np.all(np.abs(a.size - b.size)[ok] < 0.05 * size_err[ok])

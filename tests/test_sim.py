"""Tests of the GalSim simulator against analytic truth (shearbridge.sim.stamps)."""

from __future__ import annotations

import dataclasses
import math

import galsim
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import norm

from shearbridge.config import ConfigError, SimConfig
from shearbridge.sim import stamps as S

SIM = SimConfig()
#: Rendering requirement (absolute, per pixel) from the noise grid's lowest rung (1e-5).
REQUIREMENT = 1e-6
#: Asserted rendering tolerance: 100x inside the requirement (measured: 5e-10).
RENDER_TOL = 1e-8


def _row(labels: dict[str, np.ndarray], i: int) -> dict[str, float]:
    return {k: v[i] for k, v in labels.items()}


def _covariance_px2(sim: SimConfig, g1: float, g2: float, size: float, pixel: bool) -> np.ndarray:
    """Second-moment matrix (px^2) of Gaussian galaxy (x) Gaussian PSF (x) [pixel box]."""
    a = galsim.Shear(g1=g1, g2=g2).getMatrix()
    cov = size**2 * a @ a.T + sim.psf_sigma_arcsec**2 * np.eye(2)
    cov = cov / sim.pixel_scale_arcsec**2
    return cov + (np.eye(2) / 12.0 if pixel else 0.0)


def _analytic_gauss_stamp(sim: SimConfig, row: dict[str, float], nodes: int = 12) -> np.ndarray:
    """Pixel integrals of the elliptical Gaussian (galaxy (x) PSF), by Gauss-Legendre quadrature.

    Pixel (row y, column x) covers [x - 1/2, x + 1/2] x [y - 1/2, y + 1/2]; the profile
    centre is the stamp centre ((S - 1) / 2, GalSim's true centre) plus the offset.
    """
    n, px = sim.stamp_size_px, sim.pixel_scale_arcsec
    cov = _covariance_px2(sim, row["g1"], row["g2"], row["size_arcsec"], pixel=False)
    prec = np.linalg.inv(cov)
    amp = row["flux"] / (2 * np.pi * math.sqrt(np.linalg.det(cov)))
    t, w = np.polynomial.legendre.leggauss(nodes)
    t, w = t / 2, w / 2
    sub = (np.arange(n)[:, None] + t[None, :]).ravel() - (n - 1) / 2
    x = (sub - row["dx_arcsec"] / px)[None, :]
    y = (sub - row["dy_arcsec"] / px)[:, None]
    f = amp * np.exp(-0.5 * (prec[0, 0] * x**2 + 2 * prec[0, 1] * x * y + prec[1, 1] * y**2))
    weights = np.outer(np.tile(w, n), np.tile(w, n))
    return (f * weights).reshape(n, nodes, n, nodes).sum(axis=(1, 3))


def test_gaussian_stamp_matches_analytic_pixel_integral():
    labels = S.draw_population(SIM, 12, np.random.default_rng(11))
    rows = [_row(labels, i) for i in range(12)]
    # extremes: the smallest, most elongated, brightest galaxies at the largest offsets
    rows.append(dict(g1=0.7, g2=0.3, size_arcsec=0.141, flux=5.0, dx_arcsec=0.2, dy_arcsec=-0.2))
    rows.append(dict(g1=-0.1, g2=0.9, size_arcsec=0.2, flux=5.0, dx_arcsec=-0.13, dy_arcsec=0.05))
    for row in rows:
        image = S.render_clean(SIM, row)
        assert image.shape == (53, 53) and image.dtype == np.float64
        truth = _analytic_gauss_stamp(SIM, row)
        assert_allclose(image, truth, rtol=0, atol=RENDER_TOL, err_msg=f"row {row}")


def test_render_error_vs_strict_reference_exp():
    """Exponential (x) Gaussian against much stricter GalSim settings."""
    strict = galsim.GSParams(
        folding_threshold=1e-7, maxk_threshold=1e-9, kvalue_accuracy=1e-10, xvalue_accuracy=1e-10
    )
    sim = dataclasses.replace(SIM, galaxy="exp")
    row = dict(g1=0.5, g2=0.3, size_arcsec=0.15, flux=5.0, dx_arcsec=0.1, dy_arcsec=-0.05)
    image = S.render_clean(sim, row)
    gal = galsim.Exponential(half_light_radius=0.15 * S.HLR_PER_SIGMA, flux=5.0, gsparams=strict)
    ref = galsim.Convolve(gal.shear(g1=0.5, g2=0.3), galsim.Gaussian(sigma=0.25, gsparams=strict))
    ref_im = ref.drawImage(
        nx=53, ny=53, scale=0.141, offset=(0.1 / 0.141, -0.05 / 0.141), dtype=np.float64
    ).array
    assert_allclose(image, ref_im, rtol=0, atol=RENDER_TOL)


@pytest.mark.parametrize(
    "galaxy,psf", [("sersic", "gauss"), ("bulge_disk", "gauss"), ("gauss", "moffat")]
)
@pytest.mark.pipeline
def test_render_error_vs_strict_reference_slow(galaxy, psf):
    strict = galsim.GSParams(
        folding_threshold=1e-7,
        maxk_threshold=1e-9,
        kvalue_accuracy=1e-10,
        xvalue_accuracy=1e-10,
        maximum_fft_size=32768,
    )
    sim = dataclasses.replace(SIM, galaxy=galaxy, psf=psf)
    row = dict(g1=0.5, g2=0.3, size_arcsec=0.15, flux=5.0, dx_arcsec=0.1, dy_arcsec=-0.05)
    image = S.render_clean(sim, row)
    orig = S.GSPARAMS
    try:  # the same profile code, with the strict settings
        S.GSPARAMS = strict
        S.psf_profile.cache_clear()
        ref_im = S.render_clean(sim, row)
    finally:
        S.GSPARAMS = orig
        S.psf_profile.cache_clear()
    assert_allclose(image, ref_im, rtol=0, atol=RENDER_TOL)


def test_adaptive_moments_match_label_shape():
    """HSM adaptive moments of clean stamps recover the analytic observed ellipticity.

    For a Gaussian galaxy and PSF the observed covariance is the sum of the galaxy's
    sheared covariance, the PSF's and the pixel box's (1/12 px^2 per axis). The box is
    not Gaussian: its fourth cumulant (-1/120 px^4 per axis) biases Gaussian-weighted
    moments by at most ~|k4| / sigma_min^4 in distortion, which is the tolerance used
    (a mix-up of g and e, of the sign of g, or of size conventions gives errors of order
    |g|). Only galaxies whose major-axis sigma is <= 4 px (6.5 sigma inside the stamp's
    half-width) are used, so that truncation by the stamp is negligible.
    """
    labels = S.draw_population(SIM, 80, np.random.default_rng(3))
    used = 0
    for i in range(80):
        g1, g2, size = labels["g1"][i], labels["g2"][i], labels["size_arcsec"][i]
        cov = _covariance_px2(SIM, g1, g2, size, pixel=True)
        eig = np.linalg.eigvalsh(cov)
        if math.sqrt(eig.max()) > 4.0:
            continue
        used += 1
        e1 = (cov[0, 0] - cov[1, 1]) / (cov[0, 0] + cov[1, 1])
        e2 = 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1])
        image = galsim.Image(S.render_clean(SIM, _row(labels, i)), scale=SIM.pixel_scale_arcsec)
        mom = galsim.hsm.FindAdaptiveMom(image)
        tol = (1.0 / 120.0) / eig.min() ** 2
        assert_allclose(
            [mom.observed_shape.e1, mom.observed_shape.e2],
            [e1, e2],
            rtol=0,
            atol=tol,
            err_msg=f"object {i}: g=({g1:.3f}, {g2:.3f}) size={size:.3f}",
        )
        assert_allclose(mom.moments_sigma, np.linalg.det(cov) ** 0.25, rtol=tol)
    assert used >= 20


def test_psf_unit_flux_and_centred():
    psf = S.render_psf(SIM)
    assert_allclose(psf.sum(), 1.0, atol=1e-6)  # Gaussian tails beyond 14 sigma: ~0
    grid = np.arange(53) - 26
    assert_allclose([(psf.sum(0) * grid).sum(), (psf.sum(1) * grid).sum()], 0.0, atol=1e-9)
    # Moffat: the flux outside the stamp lies between what falls outside the circle
    # through the corners and outside the inscribed circle, (1 + (r/alpha)^2)^(1 - beta)
    moffat = dataclasses.replace(SIM, psf="moffat")
    total = S.render_psf(moffat).sum()
    beta, fwhm = moffat.moffat_beta, moffat.psf_fwhm_arcsec
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
    half = 26.5 * moffat.pixel_scale_arcsec
    outside = lambda r: (1 + (r / alpha) ** 2) ** (1 - beta)  # noqa: E731
    assert 1 - outside(half) - 1e-6 < total < 1 - outside(half * math.sqrt(2)) + 1e-6


def test_population_distributions():
    n = 20000
    labels = S.draw_population(SIM, n, np.random.default_rng(0))
    assert set(labels) == set(S.BASE_LABELS)
    assert all(v.shape == (n,) for v in labels.values())
    assert all(labels[k].dtype == np.float64 for k in S.BASE_LABELS if k != "model_id")
    k = 5.0  # k-sigma tolerance of each sample statistic
    flux = labels["flux"]
    assert flux.min() >= 1.0 and flux.max() <= 5.0
    assert abs(flux.mean() - 3.0) < k * (4 / math.sqrt(12)) / math.sqrt(n)
    size = labels["size_arcsec"]
    assert size.min() > 0.14
    # truncated half-normal: E[s | s > a] = sqrt(2/pi) sigma exp(-a^2 / 2 sigma^2) / (2 Q(a/sigma))
    sig, a = SIM.size_scale_arcsec, SIM.size_min_arcsec
    mean = math.sqrt(2 / math.pi) * sig * math.exp(-(a**2) / (2 * sig**2)) / (2 * norm.sf(a / sig))
    assert abs(size.mean() - mean) < k * size.std() / math.sqrt(n)
    g = np.hypot(labels["g1"], labels["g2"])
    assert g.max() < 1.0
    # |g| is Rayleigh(0.26) truncated at 1: E[g1^2] = E[|g|^2 | |g| < 1] / 2
    s2, q = SIM.g_sigma**2, math.exp(-1 / (2 * SIM.g_sigma**2))
    var = (2 * s2 - q / (1 - q)) / 2
    for comp in ("g1", "g2"):
        x = labels[comp]
        assert abs(x.mean()) < k * x.std() / math.sqrt(n)
        assert abs(x.var() - var) < k * (x**2).std() / math.sqrt(n)
    for comp in ("dx_arcsec", "dy_arcsec"):
        x = labels[comp]
        assert np.abs(x).max() <= 0.2
        assert abs(x.mean()) < k * (0.4 / math.sqrt(12)) / math.sqrt(n)
    assert_array_equal(labels["model_id"], 0)


def test_population_is_reproducible_from_the_generator():
    a = S.draw_population(SIM, 50, np.random.default_rng(7))
    b = S.draw_population(SIM, 50, np.random.default_rng(7))
    for key in a:
        assert_array_equal(a[key], b[key])


def test_mixture_draws_each_model():
    sim = dataclasses.replace(SIM, galaxy="mix")
    n = 4000
    labels = S.draw_population(sim, n, np.random.default_rng(1))
    counts = np.bincount(labels["model_id"], minlength=len(S.MIX_MODELS))
    sd = math.sqrt(n * 0.25 * 0.75)
    assert np.all(np.abs(counts - n / 4) < 5 * sd), counts
    for model_id in range(len(S.MIX_MODELS)):
        i = int(np.flatnonzero(labels["model_id"] == model_id)[0])
        image = S.render_clean(sim, _row(labels, i))
        assert np.isfinite(image).all() and image.sum() > 0


@pytest.mark.parametrize("galaxy", ["exp", "sersic", "bulge_disk"])
def test_size_convention_of_other_models(galaxy):
    sim = dataclasses.replace(SIM, galaxy=galaxy)
    prof = S.galaxy_profile(sim, 0.0, 0.0, 0.3, 2.0)
    assert_allclose(prof.flux, 2.0, rtol=1e-12)
    hlr = 0.3 * math.sqrt(2 * math.log(2))
    base = prof.original
    if galaxy == "bulge_disk":
        bulge, disk = base.obj_list
        assert_allclose([bulge.half_light_radius, disk.half_light_radius], [hlr / 2, hlr])
        bf = sim.bulge_fraction
        assert_allclose([bulge.flux, disk.flux], [2.0 * bf, 2.0 * (1 - bf)])
    else:
        assert_allclose(base.half_light_radius, hlr, rtol=1e-12)


def test_other_models_and_psfs_render_their_flux():
    """Stamps of every model conserve flux up to what falls outside the stamp."""
    row = dict(g1=0.2, g2=-0.1, size_arcsec=0.3, flux=3.0, dx_arcsec=0.05, dy_arcsec=0.1)
    combos = [("exp", "gauss"), ("sersic", "gauss"), ("bulge_disk", "gauss"), ("gauss", "moffat")]
    for galaxy, psf in combos:
        sim = dataclasses.replace(SIM, galaxy=galaxy, psf=psf)
        image = S.render_clean(sim, row)
        assert np.isfinite(image).all()
        assert 0.97 * 3.0 < image.sum() <= 3.0 * (1 + 1e-6), (galaxy, psf, image.sum())


def test_shear_test_mode_labels():
    sim = dataclasses.replace(SIM, shear_test=True, applied_shear=0.02)
    per = S.SHEAR_TEST_STAMPS
    assert per == 16
    labels = S.draw_population(sim, 6, np.random.default_rng(5))
    assert set(labels) == set(S.BASE_LABELS + S.SHEAR_LABELS)
    assert "rot90" not in labels
    n = 6 * per
    assert all(v.shape == (n,) for v in labels.values())
    # stamp 16 i + 4 orient + 2 s + f
    assert_array_equal(labels["pair_id"], np.repeat(np.arange(6), per))
    assert_array_equal(labels["orient"], np.tile(np.repeat(np.arange(4), 4), 6))
    assert_array_equal(labels["sign"], np.tile([1, 1, -1, -1], 4 * 6))
    assert_array_equal(labels["noise_sign"], np.tile([1, -1], 8 * 6))
    for key in ("size_arcsec", "flux", "dx_arcsec", "dy_arcsec", "model_id"):
        grouped = labels[key].reshape(6, per)
        assert_array_equal(grouped, grouped[:, :1].repeat(per, axis=1), err_msg=key)
    # position angle 45 * orient degrees multiplies a spin-2 shape by i**orient
    e_int = (labels["g1_int"] + 1j * labels["g2_int"]).reshape(6, 4, 4)
    assert_array_equal(
        e_int,
        e_int[:, :1, :1].repeat(4, axis=1).repeat(4, axis=2)
        * np.array([1, 1j, -1, -1j])[None, :, None],
    )
    assert_array_equal(e_int[:, 2], -e_int[:, 0])  # 90 degrees flips a spin-2 shape
    app = np.stack([labels["applied_g1"], labels["applied_g2"]])
    k = labels["pair_id"] % 2
    assert_array_equal(app[k, np.arange(n)], 0.02 * labels["sign"])
    assert_array_equal(app[1 - k, np.arange(n)], 0.0)
    for i in range(n):
        lensed = galsim.Shear(g1=app[0, i], g2=app[1, i]) + galsim.Shear(
            g1=labels["g1_int"][i], g2=labels["g2_int"][i]
        )
        got = [labels["g1"][i], labels["g2"][i]]
        assert_allclose(got, [lensed.g1, lensed.g2], rtol=0, atol=1e-15)
    # the -n stamp is the same image as its +n neighbour
    minus_n = labels["noise_sign"] < 0
    for key in ("g1", "g2", "g1_int", "g2_int", "applied_g1", "applied_g2", "orient", "sign"):
        assert_array_equal(
            labels[key][minus_n], labels[key][np.flatnonzero(minus_n) - 1], err_msg=key
        )


def test_shear_test_label_describes_the_image():
    """intrinsic.shear(applied) renders exactly like a galaxy sheared by the label g."""
    sim = dataclasses.replace(SIM, shear_test=True, applied_shear=0.05)
    labels = S.draw_population(sim, 2, np.random.default_rng(9))
    # one +g and one -g stamp of each orientation (the -n stamps are copies of the +n ones)
    for i in (0, 2, 4, 6, 8, 10, 12, 14):
        row = _row(labels, i)
        lensed = S.render_clean(sim, row)
        direct = S.render_clean(SIM, row)  # non-shear mode reads only g1, g2
        assert_allclose(lensed, direct, rtol=0, atol=1e-12)
    plus, minus = S.render_clean(sim, _row(labels, 0)), S.render_clean(sim, _row(labels, 2))
    assert np.abs(plus - minus).max() > 1e-4 * plus.max()
    assert_array_equal(S.render_clean(sim, _row(labels, 1)), plus)  # +g, -n: same image


def test_malformed_configs_raise_config_error_naming_the_field():
    cases = {
        "galaxy": dataclasses.replace(SIM, galaxy="spiral"),
        "psf": dataclasses.replace(SIM, psf="airy"),
        "flux_max": dataclasses.replace(SIM, flux_max=0.5),
        "size_min_arcsec": dataclasses.replace(SIM, size_min_arcsec=-0.1),
        "applied_shear": dataclasses.replace(SIM, applied_shear=0.0),
        "psf_g1": dataclasses.replace(SIM, psf_g1=0.5),
        "psf_g2": dataclasses.replace(SIM, psf_g2=float("nan")),
    }
    for field, bad in cases.items():
        with pytest.raises(ConfigError, match=field):
            S.draw_population(bad, 4, np.random.default_rng(0))


def test_misuse_raises_value_error():
    with pytest.raises(ValueError, match="n must be"):
        S.draw_population(SIM, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng must be"):
        S.draw_population(SIM, 3, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model="):
        S.galaxy_profile(dataclasses.replace(SIM, galaxy="mix"), 0.0, 0.0, 0.3, 1.0)
    with pytest.raises(ValueError, match="positive"):
        S.galaxy_profile(SIM, 0.0, 0.0, -0.3, 1.0)

"""The floor diagnosis: out-of-stamp flux, error/CRLB statistics, the moments-only variants."""

from __future__ import annotations

import dataclasses
import math

import galsim
import jax
import numpy as np
import pytest

from shearbridge.config import SimConfig
from shearbridge.diagnosis import floor as F
from shearbridge.models.shapenet import analytic_shears
from shearbridge.sim import stamps

pytestmark = pytest.mark.pipeline  # trainings or pipeline steps end to end: not in `make check`

SIM = SimConfig(stamp_size_px=21, size_scale_arcsec=0.6, offset_max_arcsec=0.3)


def _labels(n: int, seed: int, sim: SimConfig = SIM) -> dict[str, np.ndarray]:
    return stamps.draw_population(sim, n, np.random.default_rng(seed))


def _draw(sim: SimConfig, row: dict, size: int, method: str = "auto") -> np.ndarray:
    gal = stamps.galaxy_profile(sim, row["g1"], row["g2"], row["size_arcsec"], row["flux"])
    obj = galsim.Convolve(gal, stamps.psf_profile(sim), gsparams=stamps.GSPARAMS)
    sc = sim.pixel_scale_arcsec
    return obj.drawImage(
        nx=size,
        ny=size,
        scale=sc,
        method=method,
        dtype=np.float64,
        offset=(row["dx_arcsec"] / sc, row["dy_arcsec"] / sc),
    ).array


def test_outside_flux_matches_rendered_stamps():
    lab = _labels(12, 1)
    q = F.galaxy_quantities(lab, SIM)
    assert q["out_flux"].max() > 0.05 and q["out_flux"].min() < 0.01  # a real range is tested
    clean = stamps.render_rows(SIM, lab, range(12))
    np.testing.assert_allclose(q["out_flux"], 1 - clean.sum(axis=(1, 2)) / lab["flux"], atol=1e-7)
    # numerical integration: the same galaxies on a large stamp, flux outside the central 21 px
    some = [i for i in np.argsort(q["out_flux"]) if 1e-3 < q["out_flux"][i] < 0.3][:3]
    assert len(some) == 3
    for i in some:
        big = _draw(SIM, {k: v[i] for k, v in lab.items()}, 141)
        assert abs(big.sum() / lab["flux"][i] - 1) < 1e-7  # nothing lost from the big stamp
        out = 1 - big[60:81, 60:81].sum() / big.sum()
        assert abs(out - q["out_flux"][i]) < 1e-7


def test_outside_flux_round_gaussian_closed_form():
    s, h = np.array([1.0, 3.0, 8.0]), 10.5
    cov = s[:, None, None] ** 2 * np.eye(2)[None]
    got = F.outside_flux_fraction(cov, np.zeros((3, 2)), h)
    want = 1 - np.array([math.erf(h / (math.sqrt(2) * v)) for v in s]) ** 2
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_sizes_and_non_gaussian_rejected():
    lab = _labels(5, 2)
    q = F.galaxy_quantities(lab, SIM)
    np.testing.assert_allclose(q["size_px"], lab["size_arcsec"] / SIM.pixel_scale_arcsec)
    np.testing.assert_allclose(q["hlr_arcsec"], lab["size_arcsec"] * math.sqrt(2 * math.log(2)))
    assert np.all(q["obs_major_px"] >= np.hypot(q["size_px"], SIM.psf_sigma_px) - 1e-9)
    with pytest.raises(ValueError, match="Gaussian"):
        F.galaxy_quantities(lab, dataclasses.replace(SIM, galaxy="exp"))


def test_ratios_are_one_at_the_bound_and_robust_to_outliers():
    rng = np.random.default_rng(0)
    crlb = rng.uniform(0.5, 2.0, size=(20000, 2))
    err = crlb * rng.normal(size=crlb.shape)
    r = F.error_ratios(err, crlb)
    for k in ("rms_ratio", "median_ratio", "trimmed_ratio"):
        assert abs(r[k] - 1) < 0.03, (k, r[k])
    err[:100] *= 1000.0  # 0.5% wild galaxies
    r2 = F.error_ratios(err, crlb)
    assert r2["rms_ratio"] > 10
    assert abs(r2["median_ratio"] - 1) < 0.03 and abs(r2["trimmed_ratio"] - 1) < 0.05


def test_binned_ratios_partition_and_find_the_bad_bin():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 4000)
    crlb = np.ones((4000, 2))
    err = rng.normal(size=(4000, 2)) * np.where(x > 8, 3.0, 1.0)[:, None]
    rows = F.binned_ratios(
        err, crlb, x, np.random.default_rng(2), edges=[0, 2, 4, 6, 8, 10], n_boot=50
    )
    assert sum(r["n"] for r in rows) == 4000 and len(rows) == 5
    for r in rows[:-1]:
        assert abs(r["median_ratio"] - 1) < 4 * r["median_ratio_err"] + 0.02
    assert abs(rows[-1]["rms_ratio"] - 3) < 0.2 and rows[-1]["rms_ratio_err"] > 0
    eq = F.binned_ratios(err, crlb, x, np.random.default_rng(2), edges=4, n_boot=10)
    assert [r["n"] for r in eq] == [1000] * 4


def test_fit_affine_recovers_a_known_readout():
    rng = np.random.default_rng(3)
    g = rng.normal(size=(500, 2, 2))
    coef = np.array([[0.7, 1.2], [0.4, -0.3], [0.01, -0.02]])
    got = F.fit_affine(g, F.apply_affine(g, coef))
    np.testing.assert_allclose(got, coef, atol=1e-12)


def test_reference_variant_is_shapenets_analytic_shear():
    sim = dataclasses.replace(SIM, stamp_size_px=25)
    x = stamps.render_rows(sim, _labels(8, 4, sim), range(8))
    with jax.enable_x64(True):
        want = np.asarray(analytic_shears(np.asarray(x, np.float64), sim.psf_sigma_px))
    got = F.moment_shears(x, sim.psf_sigma_px, variant=F.Variant("f64", x64=True))
    np.testing.assert_allclose(got, want, atol=1e-12)
    got32 = F.moment_shears(x, sim.psf_sigma_px)
    assert 1e-10 < np.max(np.abs(got32 - got)) < 1e-4  # float32 round-off, nothing more


def test_variants_differ_where_expected():
    """A small galaxy drawn without the pixel on a big stamp: the exact case of the moments.
    float64 and enough iterations recover g to 1e-6 (GalSim accuracy) with no pixel term; adding the
    1/12 px^2 pixel variance biases it; float32 leaves only round-off."""
    sim = dataclasses.replace(SIM, stamp_size_px=41, size_scale_arcsec=0.3)
    lab = _labels(6, 5, sim)
    x = np.stack([_draw(sim, {k: v[i] for k, v in lab.items()}, 41, "no_pixel") for i in range(6)])
    true = np.stack([lab["g1"], lab["g2"]], axis=1)
    psf = sim.psf_sigma_px

    def err(v: F.Variant) -> float:
        return float(np.max(np.abs(F.moment_shears(x, psf, (1.0,), v)[:, 0] - true)))

    exact = err(F.Variant("f64", x64=True, n_iter=16, pixel_var=0.0))
    assert exact < 1e-6
    assert err(F.Variant("f64 pixel", x64=True, n_iter=16)) > 1e-3
    assert 1e-9 < err(F.Variant("f32", n_iter=16, pixel_var=0.0)) < 1e-4


def test_floor_experiment_rows():
    sim = dataclasses.replace(SIM, stamp_size_px=25, size_scale_arcsec=0.3)
    lab = _labels(96, 6, sim)
    x = stamps.render_rows(sim, lab, range(96)) + 1e-4 * np.random.default_rng(7).normal(
        size=(96, 25, 25)
    )
    t = np.stack([lab["g1"], lab["g2"]], axis=1)
    crlb = np.full((32, 2), 1e-3)
    variants = (
        F.Variant("reference"),
        F.Variant("float64", x64=True),
        F.Variant("no pixel", pixel_var=0.0),
    )
    rows = F.floor_experiment(
        x[:64],
        t[:64],
        x[64:],
        t[64:],
        crlb,
        lab["size_arcsec"][64:],
        sim.psf_sigma_px,
        seed=0,
        variants=variants,
        n_boot=20,
    )
    assert [(r["name"], r["subset"]) for r in rows] == [
        (v.name, s) for s in ("all", "no_largest") for v in variants
    ]
    assert rows[0]["d_rms_ratio"] == 0 and rows[3]["n"] == 30
    assert abs(rows[1]["rms_ratio"] / rows[0]["rms_ratio"] - 1) < 0.05  # float64: no change
    assert rows[2]["d_rms_ratio"] > 3 * rows[2]["d_rms_ratio_err"]  # no pixel term: worse

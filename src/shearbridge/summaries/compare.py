"""The comparison and bias summaries: every method's results of the profile, in one dict."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from shearbridge import study
from shearbridge.config import (
    EUCLID_C_REQUIREMENT,
    EUCLID_M_REQUIREMENT,
    LSST_C_REQUIREMENT,
    LSST_M_REQUIREMENT,
    SIGMA_M_HIGH_SNR,
    SIGMA_M_TARGET_HIGH_SNR,
    SIGMA_M_TARGET_SURVEY,
    Profile,
    noise_tag,
    seeds,
)
from shearbridge.estimators.base import FLAG_NAMES
from shearbridge.io import read_json
from shearbridge.stats.crlb import matched_filter_snr
from shearbridge.stats.resample import paired_rmse_ratio, ratio_with_error, robust_ratio_with_error
from shearbridge.results import load_crlb, load_crlb_unit
from shearbridge.layout import Layout
from shearbridge.results import load_measured
from shearbridge.study import TRAINING_GAIN

__all__ = [
    "CRLB_PERCENTILES",
    "TRAINING_GAIN",
    "bias_summary",
    "sigma_m_budget",
    "common_set_scores",
    "compare_summary",
    "load_result",
    "snr_summary",
]


CRLB_PERCENTILES = (16, 84)  # the band drawn around the bound in fig_rmse_vs_noise


def load_result(
    profile: Profile, method: str, sigma: float, kind: str = "compare"
) -> dict[str, Any]:
    return read_json(Layout(profile).result(kind, method, sigma))


def bias_summary(
    profile: Profile, methods: list[str], metacal: dict[str, list[float]] | None = None
) -> dict[str, Any]:
    """m, c (and median S/N) of each method at every noise level of the grid, on the round-PSF
    shear test (``bias``) and on the anisotropic-PSF one (``bias_psf``, with the leakage
    ``alpha = c1 / g_psf,1`` and its error), the metacal-calibrated test of the methods and noise
    levels in ``metacal`` (``bias_mcal``), and the label-ideal estimator's floor: the largest
    ``|m|``, ``|c|`` it shows on any method's galaxy set (bias.json)."""
    out: dict[str, Any] = {
        "profile": profile.name,
        "methods": methods,
        "bias_mcal": {
            m: {noise_tag(s): load_result(profile, m, s, "bias_mcal") for s in levels}
            for m, levels in (metacal or {}).items()
        },
        "requirements": {
            "m": LSST_M_REQUIREMENT,
            "c": LSST_C_REQUIREMENT,
            "euclid_m": EUCLID_M_REQUIREMENT,
            "euclid_c": EUCLID_C_REQUIREMENT,
        },
        "bias": {},
        "bias_psf": {},
    }
    for m in methods:  # each at its own levels of the grid (study.study_noise with the method)
        out["bias"][m] = {}
        for s in study.study_noise(profile, "bias_grid", m):
            r = load_result(profile, m, s, "bias")
            r["precision"] = sigma_m_budget(r)
            out["bias"][m][noise_tag(s)] = r
        out["bias_psf"][m] = {}
        for s in study.study_noise(profile, "bias_grid", m):
            r = load_result(profile, m, s, "bias_psf")
            g_psf = r["psf_g"][0]
            r["alpha"], r["alpha_err"] = r["c1"] / g_psf, r["c1_err"] / abs(g_psf)
            out["bias_psf"][m][noise_tag(s)] = r
    ideal = [r for kind in ("bias", "bias_psf") for per in out[kind].values() for r in per.values()]
    out["ideal_floor"] = {
        key: max(abs(r[f"{key}_ideal"]) for r in ideal) for key in ("m1", "m2", "c1", "c2")
    }
    out["ideal_floor_err"] = {
        key: max(r[f"{key}_ideal_err"] for r in ideal) for key in ("m1", "m2")
    }
    return out


def sigma_m_budget(result: dict[str, Any]) -> dict[str, Any]:
    """The shear test's precision against its target: the achieved ``sigma(m)`` (the larger
    component's jackknife error), the target (:data:`SIGMA_M_TARGET_HIGH_SNR` at median
    matched-filter S/N >= :data:`SIGMA_M_HIGH_SNR`, else :data:`SIGMA_M_TARGET_SURVEY`), and, as
    ``sigma(m)`` falls as ``1/sqrt(N)``, the galaxies (and the single-core seconds, at the measured
    rate) that would reach it."""
    sigma_m = max(result["m1_err"], result["m2_err"])
    target = (
        SIGMA_M_TARGET_HIGH_SNR
        if result["median_snr_mf"] >= SIGMA_M_HIGH_SNR
        else SIGMA_M_TARGET_SURVEY
    )
    n = int(result.get("n_galaxies_measured", result["n_galaxies"]))
    need = int(np.ceil(n * (sigma_m / target) ** 2))
    return {
        "sigma_m": sigma_m,
        "target": target,
        "met": bool(sigma_m <= target),
        "n_galaxies": n,
        "n_needed": need,
        "core_s_needed": float(result["wall_s"] * need / n),
    }


def compare_summary(
    profile: Profile,
    methods: list[str],
    bias_noise: list[float],
    bias_methods: list[str] | None = None,
) -> dict[str, Any]:
    """All comparison results of the profile (``methods``) and the bias results of ``bias_methods``
    (default: ``methods``) at ``bias_noise``, for the figure and number scripts."""
    crlb1, crlb_wall = load_crlb_unit(profile)
    out: dict[str, Any] = {
        "profile": profile.name,
        "methods": methods,
        "crlb_unit": {
            "rms": float(np.sqrt(np.mean(crlb1**2))),
            "median": float(np.median(crlb1)),
            "p16": float(np.percentile(crlb1, CRLB_PERCENTILES[0])),
            "p84": float(np.percentile(crlb1, CRLB_PERCENTILES[1])),
            "wall_s": crlb_wall,
        },
        "compare": {},
        "bias": {},
    }
    for m in methods:  # a method runs at its own levels (study.study_noise with the method)
        out["compare"][m] = {
            noise_tag(s): load_result(profile, m, s)
            for s in study.study_noise(profile, "compare", m)
        }
    for m in methods if bias_methods is None else bias_methods:
        out["bias"][m] = {
            noise_tag(s): load_result(profile, m, s, "bias")
            for s in bias_noise
            if m in study.at(profile, "bias", s)
        }
    out["common"] = {
        noise_tag(s): common_set_scores(
            profile, [m for m in methods if noise_tag(s) in out["compare"][m]], s
        )
        for s in profile.noise_grid
    }
    out["snr_mf"] = snr_summary(profile)
    out["seeds"] = seed_scatter(profile, methods)
    return out


def seed_scatter(profile: Profile, methods: list[str]) -> dict[str, Any]:
    """Each headline network and its retrainings with other seeds (:data:`shearbridge.config.
    experiments.SEED_VARIANTS`) on the common galaxies of each ``seeds`` level: RMSE/CRLB per seed,
    their mean and sample standard deviation (the seed scatter)."""
    from shearbridge.config.experiments import SEED_VARIANTS

    out: dict[str, Any] = {}
    for sigma in study.study_noise(profile, "seeds"):
        crlb = load_crlb(profile, sigma)
        common = np.logical_and.reduce([load_measured(profile, m, sigma)[1] for m in methods])
        per: dict[str, Any] = {}
        for net, extra in SEED_VARIANTS.items():
            runs = [net] + [f"{net}_seed{k}" for k in extra]
            if net not in methods or not all(r in study.names("seeds") for r in runs[1:]):
                continue
            ratios = [
                float(
                    np.sqrt(np.mean(load_measured(profile, r, sigma)[0][common] ** 2))
                    / np.sqrt(np.mean(crlb[common] ** 2))
                )
                for r in runs
            ]
            per[net] = {
                "seeds": [0, *extra],
                "ratio": ratios,
                "mean": float(np.mean(ratios)),
                "sd": float(np.std(ratios, ddof=1)),
            }
        out[noise_tag(sigma)] = per
    return out


def _flag_counts(flags: np.ndarray) -> dict[str, int]:
    """How many objects carry each flag bit (an object may carry several)."""
    return {
        name: int(np.sum((flags & bit) != 0))
        for bit, name in FLAG_NAMES.items()
        if np.any(flags & bit)
    }


def common_set_scores(profile: Profile, methods: list[str], sigma: float) -> dict[str, Any]:
    """Every method scored on the same galaxies at one noise level, failures counted.

    The common set is the comparison galaxies that no method flags (and none returns non-finite);
    each method's RMSE/CRLB and robust ratio on it carry bootstrap errors. Per method also: its
    failure fraction and flag counts, and its RMSE/CRLB over *all* galaxies with the flagged
    estimates kept wherever they are finite (what a user who ignores the flags gets). For each pair
    of :data:`TRAINING_GAIN`, RMSE(formula) / RMSE(network) on the common set (paired bootstrap).
    """
    crlb = load_crlb(profile, sigma)
    measured = {m: load_measured(profile, m, sigma)[:3] for m in methods}
    common = np.logical_and.reduce([ok for _, ok, _ in measured.values()])
    key = int(round(-np.log10(sigma) * 100))
    out: dict[str, Any] = {
        "n_total": len(common),
        "n_common": int(common.sum()),
        "methods": {},
        "gain": {},
    }
    for m, (err, ok, flags) in measured.items():
        finite = np.all(np.isfinite(err), axis=1)
        # keyed by the method's name, not its place: another method added leaves these errors as
        # they are
        rng = seeds.rng(profile.seed, "common_bootstrap", key, zlib.crc32(m.encode()))
        out["methods"][m] = {
            **ratio_with_error(err[common], crlb[common], rng, profile.bootstrap),
            **robust_ratio_with_error(err[common], crlb[common], rng, profile.bootstrap),
            "n_flagged": int((~ok).sum()),
            "flagged_fraction": float((~ok).mean()),
            "flags": _flag_counts(flags),
            "ratio_all_finite": ratio_with_error(err[finite], crlb[finite], rng, profile.bootstrap)[
                "ratio"
            ],
        }
    for formula, net in TRAINING_GAIN:
        if formula in measured and net in measured:
            rng = seeds.rng(profile.seed, "common_bootstrap", key, 999)
            out["gain"][f"{formula}/{net}"] = paired_rmse_ratio(
                measured[formula][0][common], measured[net][0][common], rng, profile.bootstrap
            )
    return out


def snr_summary(profile: Profile) -> dict[str, Any]:
    """Median (16th, 84th percentile) matched-filter S/N of the comparison galaxies.

    One entry per noise level (keyed by its tag).
    """
    from shearbridge.sim.datasets import load_dataset

    clean = load_dataset("test", profile).images(0.0)[: profile.n_crlb]
    out = {}
    for s in profile.noise_grid:
        snr = matched_filter_snr(clean, s)
        out[noise_tag(s)] = {
            "median": float(np.median(snr)),
            "p16": float(np.percentile(snr, 16)),
            "p84": float(np.percentile(snr, 84)),
        }
    return out

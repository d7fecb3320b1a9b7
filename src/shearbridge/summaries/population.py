"""The population study's summary: what the paper quotes of ``results/population.json``.

:func:`population_summary` is pure (the result dict in, the summary dict out);
``python -m shearbridge summarize population`` writes it to ``src/data/summary/population.json``.
Per cell and noise level it keeps every method's RMSE/CRLB and robust ratio (with bootstrap errors
and, for the network, the seed scatter), the network's pull widths and its gain over the
moments-only estimator; per cell shear test the multiplicative and additive bias of every method,
the network's as the mean over its seeds, and the metacalibrated network's. :func:`group_of` puts
each cell in one of :data:`GROUPS` (in distribution, held-out galaxy family, held-out PSF family,
both), the groups the paper quotes ranges of. :func:`learning_curve` is the network's learning curve
from complete runs of different lengths (no cosine tail).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shearbridge import study
from shearbridge.config.population import BUDGET_RUN
from shearbridge.stats.cells import REFERENCE, SEED_PREFIX

__all__ = [
    "population_summary",
    "learning_curve",
    "group_of",
    "seed_mean",
    "met_targets",
    "cell_methods",
    "shear_methods",
    "label",
    "GROUPS",
    "NETWORK",
    "FAMILY_LABELS",
    "MIN_SNR_TARGET",
    "MOMENTS_LABEL",
    "BUDGET_PREFIX",
]

#: The network's name in the summary (the mean over its seeds) and the cell groups, in table order.
NETWORK = "psfnet"
GROUPS = ("in", "galaxy", "psf", "both")
#: Families as the paper names them.
FAMILY_LABELS = {
    "gauss": "Gaussian",
    "exp": "exponential",
    "sersic": "S\\'ersic",
    "bulge_disk": "bulge+disk",
    "moffat": "Moffat",
    "kolmogorov": "Kolmogorov",
}
MOMENTS_LABEL = "Moments (own PSF)"
#: The budget runs' names in the results
#: (:meth:`~shearbridge.config.population.PopulationPlan.entries`).
BUDGET_PREFIX = f"abl_{BUDGET_RUN}"
#: The issue's precision target: RMSE/CRLB <= 2 in every in-distribution cell with at least this
#: median matched-filter S/N (<= 3 at the lowest noise level); pull widths within 0.05 of one in
#: every cell.
MIN_SNR_TARGET = 200
_TARGET, _TARGET_LOWEST, _PULL_TOL = 2.0, 3.0, 0.05
_CELL_KEYS = (
    "ratio",
    "ratio_err",
    "robust_ratio",
    "robust_ratio_err",
    "ratio_seed_sd",
    "pull",
    "pull_err",
    "pull_robust",
    "pull_robust_err",
    "n",
    "n_flagged",
)


def group_of(row: Mapping[str, Any], held_out: Mapping[str, str]) -> str:
    """``in``, ``galaxy``, ``psf`` or ``both``: which held-out families a cell row holds."""
    gal, psf = row["galaxy"] == held_out["galaxy"], row["psf"] == held_out["psf"]
    return "both" if gal and psf else "galaxy" if gal else "psf" if psf else "in"


def _m(bias: Mapping[str, Any]) -> dict[str, float] | None:
    """Mean of the two components' m and rms of their c, with errors.

    None where the test had too few.
    """
    if "m1" not in bias:
        return None
    return {
        "m": 0.5 * (bias["m1"] + bias["m2"]),
        "m_err": 0.5 * math.hypot(bias["m1_err"], bias["m2_err"]),
        "c": 0.5 * (bias["c1"] + bias["c2"]),
        "c_err": 0.5 * math.hypot(bias["c1_err"], bias["c2_err"]),
    }


def seed_mean(per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """m and c over the network's seeds: their mean, with an error of the seeds' mean error (one
    shear test, the same noise for every seed: the errors are not independent, so they are not
    divided by the number of seeds) plus the seed variance over their number in quadrature, and the
    seed scatter."""
    out: dict[str, float] = {}
    n = len(per_seed)
    for key in ("m", "c"):
        vals = np.array([s[key] for s in per_seed])
        errs = np.array([s[f"{key}_err"] for s in per_seed])
        spread = float(vals.var(ddof=1)) if n > 1 else 0.0
        out[key] = float(vals.mean())
        out[f"{key}_err"] = float(math.sqrt(np.mean(errs**2) + spread / n))
        out[f"{key}_seed_sd"] = math.sqrt(spread)
    return out


def _bias_row(bias: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    seeds = [_m(v) for k, v in sorted(bias.items()) if k.startswith(SEED_PREFIX)]
    out: dict[str, Any] = (
        {NETWORK: seed_mean([s for s in seeds if s is not None])} if any(seeds) else {}
    )
    for name, b in bias.items():
        if not name.startswith(SEED_PREFIX):
            out[name] = _m(b)
    return out


def _metacal_row(metacal: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    seeds = [v for k, v in sorted(metacal.items()) if k.startswith(SEED_PREFIX)]
    out = {
        NETWORK: {
            **seed_mean([_m(s) for s in seeds]),
            "median_response": float(np.mean([s["median_response"] for s in seeds])),
            "wild_response_fraction": float(np.mean([s["wild_response_fraction"] for s in seeds])),
        }
    }
    if REFERENCE in metacal:
        ref = metacal[REFERENCE]
        out[REFERENCE] = {
            **_m(ref),
            "median_response": ref["median_response"],
            "wild_response_fraction": ref["wild_response_fraction"],
        }
    return out


def population_summary(result: Mapping[str, Any], profile: str) -> dict[str, Any]:
    """The summary of one ``results/population.json`` (module docstring)."""
    held = result["held_out"]
    cells = []
    for row in result["cells"]:
        methods = {
            name: {k: r[k] for k in _CELL_KEYS if k in r}
            for name, r in row["methods"].items()
            if not name.startswith(SEED_PREFIX)
        }
        cells.append(
            {
                "galaxy": row["galaxy"],
                "psf": row["psf"],
                "noise_sigma": row["noise_sigma"],
                "group": group_of(row, held),
                "snr_median": row["snr_median"],
                "n": row["n"],
                "gain": row["gain_over_moments"],
                "methods": methods,
            }
        )
    shear = []
    for row in result["shear_cells"]:
        entry = {
            "galaxy": row["galaxy"],
            "psf": row["psf"],
            "noise_sigma": row["noise_sigma"],
            "group": group_of(row, held),
            "bias": _bias_row(row["bias"]),
        }
        if "metacal" in row:
            entry["metacal"] = _metacal_row(row["metacal"])
        shear.append(entry)
    keep = (
        "n_cell",
        "cell_noise",
        "n_shear",
        "shear_noise",
        "metacal_noise",
        "held_out",
        "seeds",
        "steps",
        "batch_size",
        "n_train",
        "training_seconds",
        "ablation_seconds",
    )
    return {
        "profile": profile,
        **{k: result[k] for k in keep},
        "cells": cells,
        "shear": shear,
        "learning": learning_curve(result),
    }


def learning_curve(result: Mapping[str, Any]) -> dict[str, Any]:
    """The network's learning curve without the cosine tail: the complete runs of its first seed
    (the budget runs, :data:`BUDGET_PREFIX`, and the full run), shortest first, each with its
    ``steps``, its final validation RMSE/CRLB (``val_ratio``: the root of half the mean squared
    error over the bound, per component, over the validation galaxies and their log-uniform noise
    levels) and, per cell noise level (``cell_noise`` order), the geometric mean of its RMSE/CRLB
    over the in-distribution cells (``cell_ratio``, with ``cell_ratio_err`` from the cells'
    bootstrap errors); ``curves``: every run's validation RMSE/CRLB at each evaluation step (the
    seeds' and the budget runs')."""
    hist = result.get("histories", {})
    first = f"{SEED_PREFIX}{result['seeds'][0]}"
    if first not in hist:
        return {}
    runs = sorted(
        [k for k in hist if k.startswith(BUDGET_PREFIX)] + [first], key=lambda k: hist[k]["steps"]
    )
    curves = {
        k: {"step": list(h["step"]), "val_ratio": [math.sqrt(v / 2) for v in h["val_point"]]}
        for k, h in hist.items()
        if k.startswith((SEED_PREFIX, BUDGET_PREFIX))
    }
    ratio, err = [], []
    for sigma in result["cell_noise"]:
        rows = [
            r
            for r in result["cells"]
            if math.isclose(r["noise_sigma"], sigma) and group_of(r, result["held_out"]) == "in"
        ]
        vals = np.array([[r["methods"][k]["ratio"] for r in rows] for k in runs])
        rel = np.array([[r["methods"][k]["ratio_err"] for r in rows] for k in runs]) / vals
        gm = np.exp(np.log(vals).mean(axis=1))
        ratio.append(gm.tolist())
        err.append((gm * np.sqrt((rel**2).sum(axis=1)) / vals.shape[1]).tolist())
    return {
        "runs": runs,
        "steps": [hist[k]["steps"] for k in runs],
        "val_ratio": [curves[k]["val_ratio"][-1] for k in runs],
        "cell_ratio": ratio,
        "cell_ratio_err": err,
        "curves": curves,
    }


def cell_methods() -> list[str]:
    """The cell table's methods: the network, the moments-only estimator, then the registry's
    ``population`` study."""
    return [NETWORK, REFERENCE, *study.names("population")]


def shear_methods() -> list[str]:
    """The shear tests' methods.

    The network, the moments-only estimator, the ``population_shear`` study.
    """
    return [NETWORK, REFERENCE, *study.names("population_shear")]


def label(name: str) -> str:
    """A method's label in the population tables.

    The moments-only estimator is not in the registry.
    """
    return MOMENTS_LABEL if name == REFERENCE else study.get_method(name).label


def met_targets(cells: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """``(met, of)`` for the precision target (in-distribution cells with median S/N >=
    :data:`MIN_SNR_TARGET`: the network's RMSE/CRLB <= 2, <= 3 at the lowest noise level) and for
    the pull target (every cell: |pull width - 1| <= 0.05)."""
    lowest = min(c["noise_sigma"] for c in cells)
    aimed = [c for c in cells if c["group"] == "in" and c["snr_median"] >= MIN_SNR_TARGET]
    ok = [
        c["methods"][NETWORK]["ratio"]
        <= (_TARGET_LOWEST if math.isclose(c["noise_sigma"], lowest) else _TARGET)
        for c in aimed
    ]
    pulls = [abs(c["methods"][NETWORK]["pull"] - 1.0) <= _PULL_TOL for c in cells]
    return {"ratio": (sum(ok), len(ok)), "pull": (sum(pulls), len(pulls))}

"""The registry's methods on the population study's cells, for :mod:`shearbridge.steps.population`.

Every method registered for the ``population`` study (:mod:`shearbridge.study`) measures each cell
at each of its noise levels, and every one of ``population_shear`` each cell's shear test, on the
same noisy stamps as PSFNet:

* a **classical estimator** is told each stamp's own PSF image (it is called once per PSF: per
  stamp in a cell, per galaxy in a shear test, whose sixteen stamps share one);
* a **per-level network** (the baseline, ShapeNet) is measured at the cell levels it is trained at
  for its other studies (no extra training). It is not told the PSF: it was trained on one, and the
  cells show what that costs;
* an estimator that returns an ellipticity with its shear response (AnaCal) is not a per-galaxy
  shear: it enters the shear tests (its ensemble shear ``sum e / sum R``), not the RMSE cells.

A method that flags galaxies is scored on the rest; the counts are recorded. Slow per-galaxy fits
measure :meth:`shearbridge.study.Method.shear_galaxies` of a shear test's galaxies, as in the main
study.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shearbridge import study
from shearbridge.config import Profile
from shearbridge.estimators.base import usable
from shearbridge.sim.stamps import SHEAR_TEST_STAMPS
from shearbridge.stats.bias import linear_bias, paired_ensemble_bias, paired_shear_bias
from shearbridge.stats.resample import ratio_with_error, robust_ratio_with_error
from shearbridge.runs import method_estimator

__all__ = [
    "population_methods",
    "population_estimators",
    "measure_grouped",
    "cell_results",
    "shear_results",
    "MIN_SCORED",
]

#: Fewest unflagged galaxies a cell's RMSE is given for.
MIN_SCORED = 8


def population_methods(profile: Profile, sigma: float, which: str = "population") -> list[str]:
    """The methods of study ``which`` (``population``: the cells; ``population_shear``: their
    shear tests) that measure at ``sigma``: every classical one, and each per-level network where
    the registry trains it anyway."""
    trained = set(study.trainings(profile))
    return [
        m.name
        for m in study.methods(which)
        if m.experiment is None
        or any(e == m.experiment and np.isclose(s, sigma) for e, s in trained)
    ]


def population_estimators(profile: Profile, sigma: float, which: str) -> dict[str, Any]:
    """``{name: estimator}`` of :func:`population_methods` at ``sigma``, built once for every cell
    of that level (a per-level network loads its run once)."""
    return {
        name: method_estimator(name, profile, sigma)
        for name in population_methods(profile, sigma, which)
    }


def measure_grouped(
    est: Any,
    stamps: np.ndarray,
    psfs: np.ndarray,
    groups: np.ndarray,
    scale: float,
    sigma: float,
    truth: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(g (N, 2), flags (N,), response (N, 2) or None)`` of ``est`` on stamps that share a PSF
    image within each ``groups`` value: one call per group, told that PSF; an estimator that takes
    a PSF per stamp (the ML fit, PSFNet) and a per-level network (which is not told a PSF) in one
    call. A control that measures at the true position (``detection == "truth"``: the survey
    test's) is given each stamp's ``truth`` (N, 2), x column and y row."""
    n = len(stamps)
    if (
        getattr(est, "trained", None) is not None
    ):  # a per-level network: the PSF is part of the model
        res = est.measure(stamps, psfs[0], scale, sigma)
        return res.g, np.zeros(n, np.int64) if res.flags is None else np.asarray(res.flags), None
    if getattr(est, "psf_per_stamp", False):  # the ML fit, PSFNet: each stamp with its PSF
        res = est.measure(stamps, psfs, scale, sigma)
        flags = np.zeros(n, np.int64) if res.flags is None else np.asarray(res.flags)
        return res.g, flags, res.extra.get("response")
    g, flags, response = np.full((n, 2), np.nan), np.zeros(n, np.int64), None
    for key in np.unique(groups):
        idx = np.flatnonzero(groups == key)
        if getattr(est, "detection", None) == "truth":
            pos = (truth[idx, 0], truth[idx, 1])
            res = est.measure(stamps[idx], psfs[idx[0]], scale, sigma, positions=pos)
        else:
            res = est.measure(stamps[idx], psfs[idx[0]], scale, sigma)
        g[idx] = res.g
        if res.flags is not None:
            flags[idx] = res.flags
        if "response" in res.extra:
            response = np.full((n, 2), np.nan) if response is None else response
            response[idx] = res.extra["response"]
    return g, flags, response


def cell_results(
    profile: Profile,
    ests: dict[str, Any],
    cell: dict[str, np.ndarray],
    x: np.ndarray,
    sigma: float,
    scale: float,
    rng: np.random.Generator,
) -> dict[str, dict[str, Any]]:
    """RMSE/CRLB, the robust ratio and the linear response of every per-galaxy method of ``ests``
    (:func:`population_estimators` at ``sigma``) on one cell's noisy stamps ``x`` (each stamp its
    own PSF)."""
    truth = np.stack([cell["g1"], cell["g2"]], axis=1).astype(np.float64)
    bounds = np.asarray(cell["bounds"], np.float64) * sigma
    out: dict[str, dict[str, Any]] = {}
    for name, est in ests.items():
        g, flags, response = measure_grouped(est, x, cell["psfs"], np.arange(len(x)), scale, sigma)
        if response is not None:  # an ellipticity, not a per-galaxy shear: shear tests only
            continue
        ok = usable(g, flags)
        row: dict[str, Any] = {"n": int(ok.sum()), "n_flagged": int((~ok).sum())}
        if ok.sum() >= MIN_SCORED:
            err = g[ok] - truth[ok]
            row.update(ratio_with_error(err, bounds[ok], rng, profile.bootstrap))
            row.update(robust_ratio_with_error(err, bounds[ok], rng, profile.bootstrap))
            row["linear_bias"] = linear_bias(truth, g, flags=np.where(ok, 0, 1), n_blocks=20)
        out[name] = row
    return out


def shear_results(
    ests: dict[str, Any],
    cell: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    x: np.ndarray,
    sigma: float,
    scale: float,
) -> dict[str, dict[str, Any]]:
    """m and c of every method of ``ests`` (:func:`population_estimators` of ``population_shear``
    at ``sigma``) on one cell's shear test (noisy stamps ``x``): the paired statistic, or the
    ensemble shear of an estimator with a response; slow fits on their share of the galaxies (the
    first ones)."""
    n_gal = len(x) // SHEAR_TEST_STAMPS
    out: dict[str, dict[str, Any]] = {}
    for name, est in ests.items():
        keep = slice(0, study.get_method(name).shear_galaxies(n_gal) * SHEAR_TEST_STAMPS)
        part = {k: v[keep] for k, v in labels.items()}
        g, flags, response = measure_grouped(
            est, x[keep], cell["psfs"][keep], part["pair_id"], scale, sigma
        )
        try:
            if response is not None:
                bias = paired_ensemble_bias(g, response, part, flags=flags)
            else:
                bias = paired_shear_bias(g, part, flags=flags)
        except (
            ValueError
        ) as exc:  # it flagged (nearly) every galaxy: no m, c, and the record says so
            bias = {"too_few": str(exc)}
        out[name] = {**bias, "n_flagged": int(np.sum(flags != 0))}
    return out

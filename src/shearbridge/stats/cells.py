"""Pure statistics of a population-study cell: RMSE/CRLB, robust ratio, pulls, shape response, gain.

A *cell* is one galaxy family x PSF family x noise level of :mod:`shearbridge.steps.population`.
Every estimator predicts ``(g1, g2, log s)`` on the same noisy stamps; ``s`` is its own per-galaxy
uncertainty (PSFNet's; the moments-only estimator's is a data-initialised guess, reported the same
way). Errors are bootstraps over galaxies (pairs kept), plus, for the network, the scatter of the
statistic over training seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from shearbridge.stats.crlb import matched_filter_snr
from shearbridge.stats.resample import paired_rmse_ratio, ratio_with_error, robust_ratio_with_error

__all__ = ["pull_width", "shape_response", "cell_metrics", "SEED_PREFIX", "REFERENCE"]

#: Names of the network's seeds in the predictions; :data:`REFERENCE` is the moments-only estimator.
SEED_PREFIX, REFERENCE = "seed", "moments"


def pull_width(
    err: np.ndarray, log_s: np.ndarray, rng: np.random.Generator, n_boot: int
) -> dict[str, float]:
    """The width of the pulls ``err / s`` over galaxies and components: the standard deviation and a
    robust one (1.4826 x median absolute pull), each with a bootstrap error. Calibrated
    uncertainties give 1."""
    z = np.asarray(err, np.float64) / np.exp(np.asarray(log_s, np.float64))[:, None]
    n = len(z)

    def stat(idx: np.ndarray) -> tuple[float, float]:
        return float(np.sqrt(np.mean(z[idx] ** 2))), float(1.4826 * np.median(np.abs(z[idx])))

    boots = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)])
    point = stat(np.arange(n))
    return {
        "pull": point[0],
        "pull_err": float(boots[:, 0].std(ddof=1)),
        "pull_robust": point[1],
        "pull_robust_err": float(boots[:, 1].std(ddof=1)),
    }


def shape_response(
    pred: np.ndarray, truth: np.ndarray, rng: np.random.Generator, n_boot: int
) -> dict[str, float]:
    """The least-squares line ``g_hat_i = (1 + m_i) g_i + c_i`` of each component over the cell's
    galaxies: ``m_shape`` (the mean of ``m_1, m_2``) and ``c_shape`` (the rms of ``c_1, c_2``),
    with bootstrap errors. It is the response of the estimate to the galaxy's whole shape, not the
    shear test's m (which cancels the intrinsic shapes): a shrinking estimator shows
    ``m_shape < 0``."""

    def stat(idx: np.ndarray) -> tuple[float, float]:
        ms, cs = [], []
        for k in range(2):
            slope, icpt = np.polyfit(truth[idx, k], pred[idx, k], 1)
            ms.append(slope - 1.0)
            cs.append(icpt)
        return float(np.mean(ms)), float(np.sqrt(np.mean(np.square(cs))))

    n = len(truth)
    boots = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)])
    point = stat(np.arange(n))
    return {
        "m_shape": point[0],
        "m_shape_err": float(boots[:, 0].std(ddof=1)),
        "c_shape": point[1],
        "c_shape_err": float(boots[:, 1].std(ddof=1)),
    }


def _one(
    pred: np.ndarray, truth: np.ndarray, bounds: np.ndarray, rng: np.random.Generator, n_boot: int
) -> dict[str, float]:
    err = pred[:, :2] - truth
    return {
        **ratio_with_error(err, bounds, rng, n_boot),
        **robust_ratio_with_error(err, bounds, rng, n_boot),
        **pull_width(err, pred[:, 2], rng, n_boot),
        **shape_response(pred, truth, rng, n_boot),
    }


def _over_seeds(values: list[float], errors: list[float]) -> tuple[float, float, float]:
    """The mean of one statistic over seeds, its error (the seeds' mean squared bootstrap error
    over their number, plus the seed variance over their number) and the seed scatter (0 for one
    seed)."""
    vals, n = np.array(values), len(values)
    spread = vals.var(ddof=1) / n if n > 1 else 0.0
    err = float(np.sqrt(np.mean(np.square(errors)) / n + spread))
    return float(vals.mean()), err, float(vals.std(ddof=1)) if n > 1 else 0.0


def cell_metrics(
    preds: Mapping[str, np.ndarray],
    truth: np.ndarray,
    bounds: np.ndarray,
    clean: np.ndarray,
    noise_sigma: float,
    rng: np.random.Generator,
    n_boot: int,
) -> dict[str, Any]:
    """The cell's numbers: per estimator (``preds[name]`` is ``(N, 3)``) :func:`ratio_with_error`,
    :func:`robust_ratio_with_error`, :func:`pull_width` and :func:`shape_response`, each under its
    own name; as ``psfnet``, for the network (the ``seed*`` entries) their mean over seeds with
    ``*_seed_sd`` their scatter; the gain RMSE(moments)/RMSE(network) per seed (paired bootstrap)
    and its mean; the median matched-filter S/N. ``bounds`` are the bounds at this noise,
    ``(N, 2)``."""
    truth, bounds = np.asarray(truth, np.float64), np.asarray(bounds, np.float64)
    if REFERENCE not in preds or not any(k.startswith(SEED_PREFIX) for k in preds):
        raise ValueError(
            f"predictions need {REFERENCE!r} and at least one {SEED_PREFIX}* entry, "
            f"got {sorted(preds)}"
        )
    for name, p in preds.items():
        if p.shape != (len(truth), 3) or not np.all(np.isfinite(p)):
            raise ValueError(
                f"predictions of {name} must be finite (N, 3) with N = {len(truth)}, got {p.shape}"
            )
    per = {
        name: _one(np.asarray(p, np.float64), truth, bounds, rng, n_boot)
        for name, p in preds.items()
    }
    seeds = sorted(k for k in preds if k.startswith(SEED_PREFIX))
    net: dict[str, float] = {}
    for key in ("ratio", "robust_ratio", "pull", "pull_robust", "rmse_g", "m_shape", "c_shape"):
        net[key], net[f"{key}_err"], net[f"{key}_seed_sd"] = _over_seeds(
            [per[s][key] for s in seeds], [per[s][f"{key}_err"] for s in seeds]
        )
    ref_err = preds[REFERENCE][:, :2] - truth
    gains = [paired_rmse_ratio(ref_err, preds[s][:, :2] - truth, rng, n_boot) for s in seeds]
    mean, err, _ = _over_seeds([x["ratio"] for x in gains], [x["ratio_err"] for x in gains])
    gain = {"ratio": mean, "ratio_err": err}
    return {
        "methods": {"psfnet": net, **per},
        "gain_over_moments": gain,
        "snr_median": float(np.median(matched_filter_snr(clean, noise_sigma))),
        "n": int(len(truth)),
    }

"""Errors of the study's statistics: paired bootstrap of RMSE/CRLB, robust medians of timings.

Pure functions of arrays (the random generator is passed in).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "ratio_with_error",
    "robust_ratio_with_error",
    "paired_rmse_ratio",
    "robust_stats",
    "ratio_stats",
    "quotient",
    "GAUSS_MEDIAN_ABS",
]

_MAD_TO_SIGMA = 1.4826  # sigma of a Gaussian from its median absolute deviation
_MEDIAN_SE = 1.2533  # standard error of a Gaussian median, in sigma / sqrt(n)


def ratio_with_error(
    err: np.ndarray, crlb: np.ndarray, rng: np.random.Generator, n_boot: int
) -> dict[str, float]:
    """RMSE(g)/RMS(CRLB) over both components, with a paired bootstrap error.

    ``err`` is (N, 2) of estimate minus truth and ``crlb`` (N, 2) the per-galaxy
    bounds on the same objects; resampling galaxies keeps the pairing.
    """

    def stat(idx: np.ndarray) -> tuple[float, float, float]:
        rmse = float(np.sqrt(np.mean(err[idx] ** 2)))
        rms_crlb = float(np.sqrt(np.mean(crlb[idx] ** 2)))
        return rmse, rms_crlb, rmse / rms_crlb

    n = len(err)
    point = stat(np.arange(n))
    boots = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)])
    sd = boots.std(axis=0, ddof=1)
    return {
        "rmse_g": point[0],
        "rmse_g_err": float(sd[0]),
        "rms_crlb": point[1],
        "ratio": point[2],
        "ratio_err": float(sd[2]),
        "n": int(n),
    }


#: Median of |x| for a unit Gaussian x: a median |err|/CRLB of this value means "at the bound".
GAUSS_MEDIAN_ABS = 0.6744897501960817


def robust_ratio_with_error(
    err: np.ndarray, crlb: np.ndarray, rng: np.random.Generator, n_boot: int
) -> dict[str, float]:
    """A robust RMSE/CRLB: the median over galaxies and components of ``|err| / crlb``, divided by
    :data:`GAUSS_MEDIAN_ABS` (so an estimator with Gaussian errors at the bound gives 1), with a
    bootstrap error over galaxies. Insensitive to the few galaxies that dominate the RMS."""
    z = np.abs(np.asarray(err, np.float64)) / np.asarray(crlb, np.float64)  # (N, 2)
    n = len(z)
    point = float(np.median(z)) / GAUSS_MEDIAN_ABS
    boots = [float(np.median(z[rng.integers(0, n, n)])) / GAUSS_MEDIAN_ABS for _ in range(n_boot)]
    return {"robust_ratio": point, "robust_ratio_err": float(np.std(boots, ddof=1)), "n": int(n)}


def paired_rmse_ratio(
    err_a: np.ndarray, err_b: np.ndarray, rng: np.random.Generator, n_boot: int
) -> dict[str, float]:
    """RMSE(a) / RMSE(b) of two estimators on the same galaxies (rows), with a paired bootstrap
    error (galaxies resampled together, so their shared scatter cancels)."""
    a, b = np.asarray(err_a, np.float64), np.asarray(err_b, np.float64)
    if a.shape != b.shape or a.ndim != 2 or len(a) < 2:
        raise ValueError(
            "paired errors must be two (N >= 2, 2) arrays of equal shapes, "
            f"got {a.shape} and {b.shape}"
        )

    def stat(idx: np.ndarray) -> float:
        return float(np.sqrt(np.mean(a[idx] ** 2) / np.mean(b[idx] ** 2)))

    n = len(a)
    boots = [stat(rng.integers(0, n, n)) for _ in range(n_boot)]
    return {"ratio": stat(np.arange(n)), "ratio_err": float(np.std(boots, ddof=1)), "n": int(n)}


def robust_stats(values: np.ndarray | list[float]) -> dict[str, Any]:
    """Median, robust spread (1.4826 x MAD) of one value and the error of the median
    (1.2533 x spread / sqrt(n))."""
    v = np.asarray(values, np.float64)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"robust_stats needs finite values, got {values!r}")
    med = float(np.median(v))
    spread = _MAD_TO_SIGMA * float(np.median(np.abs(v - med)))
    return {
        "median": med,
        "spread": spread,
        "err": _MEDIAN_SE * spread / math.sqrt(v.size),
        "n": int(v.size),
        "values": v.tolist(),
    }


def ratio_stats(num: list[float], den: list[float]) -> dict[str, Any]:
    """Per-round ratios ``num[i] / den[i]`` (paired: same round, same load) summarised."""
    if len(num) != len(den):
        raise ValueError(f"paired ratios need equal lengths, got {len(num)} and {len(den)}")
    return robust_stats(np.asarray(num, np.float64) / np.asarray(den, np.float64))


def quotient(a: float, a_err: float, b: float, b_err: float) -> tuple[float, float]:
    """``a / b`` and its error, the relative errors of two independent estimates added in
    quadrature: ``q * hypot(a_err / a, b_err / b)``."""
    q = a / b
    return q, q * math.hypot(a_err / a, b_err / b)

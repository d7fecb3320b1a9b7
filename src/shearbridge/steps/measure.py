"""What every measuring step shares: a registered method timed on a batch, and the progress bar.

:func:`timed_measure` builds the method's estimator at one noise level
(:func:`shearbridge.runs.method_estimator`), compiles / warms it up on a few stamps first, then
times the batch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shearbridge.config import Profile
from shearbridge.runs import method_estimator

__all__ = ["timed_measure", "timed_result", "progress_bar", "WARMUP_STAMPS"]

#: Stamps of the untimed warm-up call of a classical estimator (networks: one full batch).
WARMUP_STAMPS = 8


def progress_bar(total: int, desc: str, unit: str = "stamp") -> tqdm:
    """The steps' progress bar: on a terminal only (quiet in logs), gone when done."""
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None, mininterval=1.0)


def timed_measure(
    method: str, profile: Profile, sigma: float, images: np.ndarray, psf: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """(g_hat (N, 2), flags (N,), wall seconds) of one method on ``images``, compilation excluded
    (:func:`timed_result`)."""
    res, wall = timed_result(method, profile, sigma, images, psf, scale)
    return res.g, np.asarray(res.flags), wall


def timed_result(
    method: str, profile: Profile, sigma: float, images: np.ndarray, psf: np.ndarray, scale: float
) -> tuple[Any, float]:
    """The method's full :class:`~shearbridge.estimators.base.EstimatorResult` on ``images`` (with
    its ``extra``, e.g. an ensemble-response estimator's ``response``) and the wall seconds,
    compilation excluded: the estimator is warmed up on a few stamps first. Estimators with a
    ``progress`` attribute (the slow classical ones) drive a progress bar."""
    est = method_estimator(method, profile, sigma)
    warm = getattr(est, "warmup_stamps", WARMUP_STAMPS)
    est.measure(images[: min(len(images), warm)], psf, scale, sigma)
    with progress_bar(len(images), f"{method} at noise {sigma:g}") as bar:
        if hasattr(est, "progress"):
            est.progress = bar.update
        t0 = time.perf_counter()
        res = est.measure(images, psf, scale, sigma)
        wall = time.perf_counter() - t0
    return res, wall

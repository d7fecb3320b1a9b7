"""What every measuring step shares: a registered method's estimator at one noise level, timed.

A network's estimator loads the run trained at the same noise level from the profile's
data folder (:func:`network_loader`); a classical estimator is built from the profile's
seed. :func:`timed_measure` compiles / warms up on a few stamps first, then times the batch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import paths, study
from shearbridge.config import Profile, noise_tag

__all__ = ["network_loader", "method_estimator", "timed_measure", "result_path", "WARMUP_STAMPS"]

#: Stamps of the untimed warm-up call of a classical estimator (networks: one full batch).
WARMUP_STAMPS = 8


def network_loader(profile: Profile):
    """``load(experiment, noise_sigma) -> Trained``: the profile's run trained at that noise level."""
    def load(experiment: str, sigma: float) -> Any:
        from shearbridge.models import load_trained

        run = paths.run_dir(experiment, sigma, profile)
        trained = load_trained(run)
        trained.check_trained_for(experiment, sigma, run)
        return trained

    return load


def method_estimator(method: str, profile: Profile, sigma: float) -> Any:
    """The estimator of registered ``method`` at pixel noise ``sigma`` (image units)."""
    context = study.MethodContext(seed=profile.seed, noise_sigma=sigma, load_network=network_loader(profile))
    return study.get_method(method).estimator(context)


def timed_measure(method: str, profile: Profile, sigma: float, images: np.ndarray, psf: np.ndarray,
                  scale: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(g_hat (N, 2), flags (N,), wall seconds) of one method on ``images``, compilation excluded."""
    est = method_estimator(method, profile, sigma)
    warm = getattr(est, "batch_size", WARMUP_STAMPS)
    est.measure(images[: min(len(images), warm)], psf, scale, sigma)
    t0 = time.perf_counter()
    res = est.measure(images, psf, scale, sigma)
    return res.g, np.asarray(res.flags), time.perf_counter() - t0


def result_path(profile: Profile, method: str, sigma: float, kind: str = "compare") -> Path:
    """``results/<kind>/<method>/noise<tag>.json`` of the profile (kind: compare or bias)."""
    return paths.results_dir(profile) / kind / method / f"noise{noise_tag(sigma)}.json"

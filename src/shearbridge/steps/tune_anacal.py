"""Pipeline step: AnaCal's kernel scale and weight constant, chosen on a tuning set.

Issue 16, item 3.

AnaCal's two settings (:class:`shearbridge.estimators.anacal.AnaCalEstimator`: ``sigma_arcsec``,
the shapelet kernel; ``c0``, the weight in the ellipticity's denominator, in units of the
flux moment's noise) are scanned over :data:`SIGMA_GRID` x :data:`C0_GRID` on the first
:data:`N_TUNE` galaxies of the *training* set (never a test galaxy) at the grid's highest noise
level (survey S/N, where the choice matters; at high S/N every setting is precise). The score
is the shear noise per attempted galaxy of the ensemble estimator ``sum e / sum R``:
``var(e) / <R>^2 / (1 - f)`` per component (``var`` over galaxies, so intrinsic shape and
pixel noise both count; ``f`` the flagged fraction), averaged over the components; the
smallest wins, up to :data:`SCORE_TOLERANCE` (the pure part:
:mod:`shearbridge.diagnosis.anacal_tuning`). Writes
``src/data/<profile>/diagnosis/anacal_tuning.json`` with the table, the choice, the configured
defaults and ``agrees``; the paper's numbers refuse to build when they disagree. Run on its own::

    python -m shearbridge tune-anacal --profile quick
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge.layout import Layout
from shearbridge.config import Profile
from shearbridge.diagnosis.anacal_tuning import (
    C0_GRID,
    N_TUNE,
    SCORE_TOLERANCE,
    SIGMA_GRID,
    anacal_score,
    choose,
)
from shearbridge.io import write_json
from shearbridge.steps.command import profile_command

__all__ = [
    "SIGMA_GRID",
    "C0_GRID",
    "N_TUNE",
    "SCORE_TOLERANCE",
    "anacal_score",
    "run_anacal_tuning",
    "COMMANDS",
]


def run_anacal_tuning(profile: Profile) -> Path:
    """Scan the settings on the training galaxies; write and return the path of the table
    (``Layout(profile).diagnosis("anacal_tuning.json")``)."""
    from shearbridge.estimators.anacal import AnaCalEstimator
    from shearbridge.sim.datasets import load_dataset

    t0 = time.perf_counter()
    sigma_n = float(max(profile.noise_grid))
    ds = load_dataset("train", profile).subset(slice(0, min(N_TUNE, profile.n_train)))
    images, psf = ds.images(sigma_n), np.asarray(ds.psf)
    table: list[dict[str, Any]] = []
    for sigma in SIGMA_GRID:
        for c0 in C0_GRID:
            res = AnaCalEstimator(sigma_arcsec=sigma, c0=c0, seed=profile.seed).measure(
                images, psf, ds.sim.pixel_scale_arcsec, sigma_n
            )
            table.append(
                {
                    "sigma_arcsec": sigma,
                    "c0": c0,
                    "flagged": int(np.sum(res.flags != 0)),
                    "score": anacal_score(
                        np.asarray(res.g), np.asarray(res.extra["response"]), res.flags
                    ),
                }
            )
    default = AnaCalEstimator.__dataclass_fields__
    current = {
        "sigma_arcsec": float(default["sigma_arcsec"].default),
        "c0": float(default["c0"].default),
    }
    choice = choose(table)
    out = {
        "profile": profile.name,
        "noise_sigma": sigma_n,
        "n_galaxies": len(ds),
        "dataset": "train",
        "table": table,
        "choice": choice,
        "current": current,
        "agrees": choice == current,
        "wall_s": time.perf_counter() - t0,
    }
    path = Layout(profile).diagnosis("anacal_tuning.json")
    write_json(path, out)
    return path


COMMANDS = (
    profile_command(
        "tune-anacal",
        "AnaCal's kernel scale and weight constant, chosen on "
        "training galaxies at the survey noise (anacal_tuning.json)",
        run_anacal_tuning,
    ),
)

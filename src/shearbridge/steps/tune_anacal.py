"""Pipeline step: AnaCal's kernel scale and weight constant, chosen on a tuning set (issue 16, item 3).

AnaCal's two settings (:class:`shearbridge.estimators.anacal.AnaCalEstimator`: ``sigma_arcsec``,
the shapelet kernel; ``c0``, the weight in the ellipticity's denominator, in units of the
flux moment's noise) are scanned over :data:`SIGMA_GRID` x :data:`C0_GRID` on the first
:data:`N_TUNE` galaxies of the *training* set (never a test galaxy) at the grid's highest noise
level (survey S/N, where the choice matters; at high S/N every setting is precise). The score
is the shear noise per attempted galaxy of the ensemble estimator ``sum e / sum R``:
``var(e) / <R>^2 / (1 - f)`` per component (``var`` over galaxies, so intrinsic shape and
pixel noise both count; ``f`` the flagged fraction), averaged over the components; the
smallest wins, up to :data:`SCORE_TOLERANCE`. Writes ``src/data/<profile>/diagnosis/anacal_tuning.json``
with the table, the choice, the configured defaults and ``agrees``; the paper's numbers refuse to build when they
disagree. Run on its own::

    python -m shearbridge.steps.tune_anacal --profile quick
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import paths
from shearbridge.config import Profile
from shearbridge.estimators.base import usable
from shearbridge.io import write_json
from shearbridge.steps.tune import profile_main

__all__ = ["SIGMA_GRID", "C0_GRID", "N_TUNE", "SCORE_TOLERANCE", "anacal_tuning_path", "anacal_score",
           "run_anacal_tuning"]

#: Kernel scales scanned (arcsec; the PSF sigma is 0.25").
SIGMA_GRID = (0.45, 0.52, 0.60)
#: Weight constants scanned (units of the flux moment's noise sigma).
C0_GRID = (4.0, 8.0, 16.0, 32.0, 64.0)
#: A setting within this fraction of the best score counts as tied; the smallest tied ``c0`` (then
#: the smallest kernel) is chosen: the score flattens at large ``c0``, where the ellipticity becomes a
#: flux-weighted moment and the brightest galaxies dominate the ensemble.
SCORE_TOLERANCE = 0.01
#: Training-set galaxies the scan measures.
N_TUNE = 1024


def anacal_tuning_path(profile: Profile) -> Path:
    return paths.profile_dir(profile) / "diagnosis" / "anacal_tuning.json"


def anacal_score(e: np.ndarray, response: np.ndarray, flags: np.ndarray) -> float:
    """Shear noise per attempted galaxy: ``mean_k var(e_k) / <R_k>^2`` over the usable galaxies,
    over ``1 - f`` (a flagged galaxy is lost)."""
    ok = usable(e, flags, response)
    if ok.sum() < 2:
        return float("inf")
    var = np.var(e[ok], axis=0) / np.mean(response[ok], axis=0) ** 2
    return float(np.mean(var) / np.mean(ok))


def run_anacal_tuning(profile: Profile) -> Path:
    """Scan the settings on the training galaxies; write and return :func:`anacal_tuning_path`."""
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
                images, psf, ds.sim.pixel_scale_arcsec, sigma_n)
            table.append({"sigma_arcsec": sigma, "c0": c0, "flagged": int(np.sum(res.flags != 0)),
                          "score": anacal_score(np.asarray(res.g), np.asarray(res.extra["response"]), res.flags)})
    top = min(r["score"] for r in table)
    tied = [r for r in table if r["score"] <= top * (1 + SCORE_TOLERANCE)]
    best = min(tied, key=lambda r: (r["c0"], r["sigma_arcsec"]))
    default = AnaCalEstimator.__dataclass_fields__
    current = {"sigma_arcsec": float(default["sigma_arcsec"].default), "c0": float(default["c0"].default)}
    choice = {"sigma_arcsec": best["sigma_arcsec"], "c0": best["c0"]}
    out = {"profile": profile.name, "noise_sigma": sigma_n, "n_galaxies": len(ds), "dataset": "train",
           "table": table, "choice": choice, "current": current, "agrees": choice == current,
           "wall_s": time.perf_counter() - t0}
    path = anacal_tuning_path(profile)
    write_json(path, out)
    return path


def main(argv: list[str] | None = None) -> None:
    profile_main("python -m shearbridge.steps.tune_anacal", __doc__, run_anacal_tuning, argv)


if __name__ == "__main__":
    main()

"""AnaCal's kernel scale and weight constant, chosen on a tuning set: the grid, score and choice.

Pure (arrays in, numbers out); the pipeline step :mod:`shearbridge.steps.tune_anacal` measures the
training galaxies with every setting of :data:`SIGMA_GRID` x :data:`C0_GRID` and writes the table.
The score (:func:`anacal_score`) is the shear noise per attempted galaxy of the ensemble estimator
``sum e / sum R``; the smallest wins, up to :data:`SCORE_TOLERANCE` (:func:`choose`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shearbridge.estimators.base import usable

__all__ = ["SIGMA_GRID", "C0_GRID", "N_TUNE", "SCORE_TOLERANCE", "anacal_score", "choose"]

#: Kernel scales scanned (arcsec; the PSF sigma is 0.25").
SIGMA_GRID = (0.45, 0.52, 0.60)
#: Weight constants scanned (units of the flux moment's noise sigma).
C0_GRID = (4.0, 8.0, 16.0, 32.0, 64.0)
#: A setting within this fraction of the best score counts as tied; the smallest tied ``c0`` (then
#: the smallest kernel) is chosen: the score flattens at large ``c0``, where the ellipticity becomes
#: a flux-weighted moment and the brightest galaxies dominate the ensemble.
SCORE_TOLERANCE = 0.01
#: Training-set galaxies the scan measures.
N_TUNE = 1024


def anacal_score(e: np.ndarray, response: np.ndarray, flags: np.ndarray) -> float:
    """Shear noise per attempted galaxy: ``mean_k var(e_k) / <R_k>^2`` over the usable galaxies,
    over ``1 - f`` (a flagged galaxy is lost)."""
    ok = usable(e, flags, response)
    if ok.sum() < 2:
        return float("inf")
    var = np.var(e[ok], axis=0) / np.mean(response[ok], axis=0) ** 2
    return float(np.mean(var) / np.mean(ok))


def choose(table: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The chosen setting of a scan's rows (``sigma_arcsec``, ``c0``, ``score``): among those within
    :data:`SCORE_TOLERANCE` of the best score, the smallest ``c0``, then the smallest kernel."""
    top = min(r["score"] for r in table)
    tied = [r for r in table if r["score"] <= top * (1 + SCORE_TOLERANCE)]
    best = min(tied, key=lambda r: (r["c0"], r["sigma_arcsec"]))
    return {"sigma_arcsec": best["sigma_arcsec"], "c0": best["c0"]}

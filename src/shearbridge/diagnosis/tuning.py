"""Choosing the adaptive-moment weight fractions on the validation split, never on test galaxies.

:data:`shearbridge.models.moments.WEIGHT_FRACTIONS` sets the Gaussian weights whose
shears ShapeNet reads out. Here it is chosen the way a hyper-parameter should be: each
candidate set of fractions gives a moments-only estimator (adaptive-moment shears,
:func:`shearbridge.diagnosis.floor.moment_shears`, with an affine read-out fitted by least
squares on the *training* part of the training set,
:func:`~shearbridge.diagnosis.floor.fit_affine`), scored by its RMSE(g) on the *validation*
part, at every noise level of the study. The split is the trainer's own
(:func:`shearbridge.train.data.split_indices`, same ``val_fraction`` and seed), so no galaxy
used for the choice is one the networks were fitted on, and no test galaxy is used at all.

Scores of a candidate over the levels (lower is better; ties go to the earlier candidate):

``"bound"`` (default)
    ``sum_sigma RMSE(sigma) / sigma``. The Cramer-Rao bound is linear in the pixel noise
    sigma, so this ranks candidates as the sum over levels of RMSE/CRLB (the paper's
    figure of merit) would, without needing the bound of the validation galaxies; each
    level counts alike.
``"sum"``, ``"quadrature"``
    ``sum_sigma RMSE`` and ``sqrt(sum_sigma RMSE^2)``: dominated by the noisiest level.

Pure and deterministic (no files, no random numbers beyond the fixed split).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from shearbridge.diagnosis.floor import apply_affine, fit_affine, moment_shears
from shearbridge.train.data import DatasetLike, split_indices

__all__ = [
    "SCORES",
    "BASE_FRACTIONS",
    "candidate_grid",
    "validation_table",
    "score_candidates",
    "tune_weight_fractions",
]

SCORES = ("bound", "sum", "quadrature")
#: the single fractions the default grid is built from (largest first)
BASE_FRACTIONS = (1.0, 0.5, 0.25, 0.125)


def candidate_grid(
    fractions: Sequence[float] = BASE_FRACTIONS, max_size: int = 2
) -> list[tuple[float, ...]]:
    """Every set of 1 .. ``max_size`` distinct ``fractions``, each largest first, singles first."""
    fr = sorted(set(float(f) for f in fractions), reverse=True)
    if not fr or min(fr) <= 0 or max_size < 1:
        raise ValueError(f"need positive fractions and max_size >= 1, got {fractions}, {max_size}")
    return [c for k in range(1, max_size + 1) for c in itertools.combinations(fr, k)]


def validation_table(
    data: DatasetLike,
    noise_levels: Sequence[float],
    psf_sigma_px: float,
    val_fraction: float,
    seed: int,
    candidates: Sequence[Sequence[float]],
    n_fit: int | None = None,
    batch_size: int = 512,
) -> list[dict[str, Any]]:
    """Validation RMSE(g) of the moments-only estimator of every candidate at every level.

    Parameters
    ----------
    data : DatasetLike
        The training dataset (``images(sigma)``, ``targets(2)``; the first two target
        columns are ``g1, g2``).
    noise_levels : sequence of float
        Pixel noise sigmas (image units) of the study.
    psf_sigma_px : float
        The data's Gaussian PSF sigma (pixels).
    val_fraction, seed : float, int
        The trainer's split (``profile.val_fraction``, ``TrainConfig.seed``).
    candidates : sequence of sequences of float
        Weight-fraction sets (e.g. :func:`candidate_grid`).
    n_fit : int, optional
        Fit the read-out on the first ``n_fit`` training-split objects only (cost); all by default.
    batch_size : int
        Stamps per jitted moment call.

    Returns
    -------
    list of dict
        One row per (level, candidate): ``noise_sigma``, ``fractions``, ``val_rmse``,
        ``per_component`` (RMSE of g1, g2), ``n_fit``, ``n_val``.
    """
    tr, va = split_indices(len(data), val_fraction, seed)
    tr = tr[:n_fit] if n_fit is not None else tr
    targets = np.asarray(data.targets(2), np.float64)
    cands = [tuple(float(f) for f in c) for c in candidates]
    union = sorted({f for c in cands for f in c}, reverse=True)
    rows = []
    for sigma in noise_levels:
        images = data.images(float(sigma))
        g_tr = moment_shears(images[tr], psf_sigma_px, union, batch_size=batch_size)
        g_va = moment_shears(images[va], psf_sigma_px, union, batch_size=batch_size)
        for c in cands:
            cols = [union.index(f) for f in c]
            coef = fit_affine(g_tr[:, cols], targets[tr])
            err = apply_affine(g_va[:, cols], coef) - targets[va]
            rows.append(
                {
                    "noise_sigma": float(sigma),
                    "fractions": c,
                    "val_rmse": float(np.sqrt(np.mean(err**2))),
                    "per_component": [float(v) for v in np.sqrt(np.mean(err**2, axis=0))],
                    "n_fit": int(len(tr)),
                    "n_val": int(len(va)),
                }
            )
    return rows


def score_candidates(
    table: Sequence[dict[str, Any]], score: str = "bound"
) -> dict[tuple[float, ...], float]:
    """Each candidate's score over the levels of ``table`` (see the module docstring), in
    the table's candidate order."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    out: dict[tuple[float, ...], list[float]] = {}
    for r in table:
        v = {
            "bound": r["val_rmse"] / r["noise_sigma"],
            "sum": r["val_rmse"],
            "quadrature": r["val_rmse"] ** 2,
        }
        out.setdefault(tuple(r["fractions"]), []).append(v[score])
    return {
        c: float(np.sqrt(np.sum(v)) if score == "quadrature" else np.sum(v)) for c, v in out.items()
    }


def tune_weight_fractions(
    data: DatasetLike,
    noise_levels: Sequence[float],
    psf_sigma_px: float,
    val_fraction: float,
    seed: int,
    candidates: Sequence[Sequence[float]] | None = None,
    score: str = "bound",
    n_fit: int | None = None,
    batch_size: int = 512,
) -> dict[str, Any]:
    """Choose the weight fractions on the validation split (arguments: :func:`validation_table`).

    Returns
    -------
    dict
        ``table`` (:func:`validation_table`), ``scores`` (``{score name: {candidate: value}}``
        for every score of :data:`SCORES`), ``choice`` (the best candidate under
        ``score``), ``choices`` (the best under each score), ``best_per_level``
        (``{sigma: candidate}``) and ``score``.
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    cands = (
        candidate_grid() if candidates is None else [tuple(float(f) for f in c) for c in candidates]
    )
    if not cands:
        raise ValueError("no candidates to choose from")
    table = validation_table(
        data, noise_levels, psf_sigma_px, val_fraction, seed, cands, n_fit, batch_size
    )
    scores = {s: score_candidates(table, s) for s in SCORES}
    choices = {s: min(v, key=lambda c: (v[c], cands.index(c))) for s, v in scores.items()}
    best = {}
    for sigma in noise_levels:
        rows = [r for r in table if r["noise_sigma"] == float(sigma)]
        best[float(sigma)] = min(rows, key=lambda r: r["val_rmse"])["fractions"]
    return {
        "table": table,
        "scores": scores,
        "choice": choices[score],
        "choices": choices,
        "best_per_level": best,
        "score": score,
    }

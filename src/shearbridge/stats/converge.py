"""When has a training converged: paired ratios of validation errors over a doubling (pure).

Each rung of a ladder (:mod:`shearbridge.config.converge`) is evaluated on the same validation
stamps with the same noise (one seed's), giving per stamp ``e_i = |g_hat - g|^2 / sigma_CRLB^2``
(the terms of the training objective's point part, whose mean is ``val_point``). Two rungs ``a``
(N steps) and ``b`` (2N) are compared by ``r = mean(e_b) / mean(e_a)`` with the delta-method error
of a ratio of paired means, ``sigma_r = std(d) / sqrt(n)``, ``d_i = (e_b,i - r e_a,i) / mean(e_a)``
(the pairing cancels the stamps' common scatter).

**Rule** (:func:`select_rung`): a seed has converged at the first doubling whose ratio is not
below one by more than ``z`` (2) errors, ``r >= 1 - z sigma_r``, while those errors are small
enough to have seen an improvement of ``tol`` (20 %), ``z sigma_r <= tol``: training twice as long
no longer buys a resolved improvement. (Without the second condition a few validation stamps far
from their bound make a short, poorly trained rung look flat: the quick ladder's first doubling
has ``r = 0.57 +- 0.25``. The paper plan's 2,048 validation stamps give ``sigma_r ~ 0.07``, so
``tol`` cannot be much below 0.15 there; 0.2 was set after the first seed's ladder had been seen,
whose four doublings all fall by more than 2 errors, so it decides none of them.)
The rung kept is the one of the pair with the lower validation error
(decided on validation stamps, never on a test cell). No such doubling: not converged, and the
longest rung is reported as a lower bound of what training buys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["paired_ratio", "select_rung", "Z_FLAT", "TOL_FLAT"]

#: Errors within which a doubling counts as flat.
Z_FLAT = 2.0
#: The improvement over a doubling that a flat doubling must have been able to resolve.
TOL_FLAT = 0.2


def paired_ratio(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``(mean(b) / mean(a), its error)`` for paired per-stamp values (module docstring)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"need two paired 1-D samples of >= 2 values, got {a.shape}, {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("per-stamp validation errors contain NaN or inf")
    ma = a.mean()
    if not ma > 0:
        raise ValueError(f"the shorter rung's mean validation error must be > 0, got {ma}")
    r = b.mean() / ma
    d = (b - r * a) / ma
    return float(r), float(d.std(ddof=1) / np.sqrt(a.size))


def select_rung(
    steps: Sequence[int],
    errors: Sequence[np.ndarray],
    z: float = Z_FLAT,
    tol: float = TOL_FLAT,
) -> dict[str, Any]:
    """The ladder of one seed: ``steps`` (increasing) and each rung's per-stamp validation errors.

    Returns ``points`` (mean per rung) and ``point_errors``, ``ratios`` and ``ratio_errors``
    (each doubling), ``resolved`` (each doubling's ``z sigma_r <= tol``), ``converged``
    (bool), ``flat_at`` (the flat doubling's shorter rung, or None) and ``kept`` (the steps of
    the rung kept: the better of the flat pair, else the longest)."""
    if len(steps) != len(errors) or len(steps) < 2:
        raise ValueError("need at least two rungs, one error array each")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"rung steps must increase, got {list(steps)}")
    points = [float(np.mean(e)) for e in errors]
    point_errors = [float(np.std(e, ddof=1) / np.sqrt(len(e))) for e in errors]
    ratios, sig = [], []
    for a, b in zip(errors, errors[1:]):
        r, s = paired_ratio(a, b)
        ratios.append(r)
        sig.append(s)
    resolved = [z * s <= tol for s in sig]
    flat = next(
        (k for k, (r, s, ok) in enumerate(zip(ratios, sig, resolved)) if ok and r >= 1.0 - z * s),
        None,
    )
    if flat is None:
        kept = int(steps[-1])
    else:
        kept = int(steps[flat + 1] if points[flat + 1] < points[flat] else steps[flat])
    return {
        "steps": [int(s) for s in steps],
        "points": points,
        "point_errors": point_errors,
        "ratios": ratios,
        "ratio_errors": sig,
        "resolved": resolved,
        "converged": flat is not None,
        "flat_at": None if flat is None else int(steps[flat]),
        "kept": kept,
        "z": float(z),
        "tol": float(tol),
    }

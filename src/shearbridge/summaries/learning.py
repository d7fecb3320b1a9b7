"""Learning curves read off at equal compute (the ``learning`` summary).

:func:`matched_compute` compares the curves of :func:`shearbridge.steps.learning.learning_curve`
at equal compute: each model's ratio at the largest FLOP budget that all of them reached,
interpolated log-linearly between snapshots.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["matched_compute"]


def matched_compute(curves: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each curve's RMSE/CRLB at the largest training-FLOP budget every curve reached.

    ``curves`` maps a name to a :func:`~shearbridge.steps.learning.learning_curve` result. The ratio
    is interpolated linearly in log(ratio) against log(FLOPs) between the two
    snapshots around the budget (taken as is when the budget is a snapshot);
    its error is interpolated the same way.
    """
    if not curves:
        raise ValueError("matched_compute needs at least one learning curve")
    budget = min(max(p["train_flops"] for p in c["points"]) for c in curves.values())
    out: dict[str, Any] = {"train_flops": budget, "ratio": {}, "ratio_err": {}}
    for name, c in curves.items():
        f = np.log([p["train_flops"] for p in c["points"]])
        r = np.log([p["ratio"] for p in c["points"]])
        e = np.array([p["ratio_err"] for p in c["points"]])
        if np.log(budget) < f[0]:
            raise ValueError(
                f"{name}: first snapshot is beyond the common budget {budget:.3g} FLOPs"
            )
        ratio = float(np.exp(np.interp(np.log(budget), f, r)))
        out["ratio"][name] = ratio
        out["ratio_err"][name] = float(np.interp(np.log(budget), f, e))
    return out

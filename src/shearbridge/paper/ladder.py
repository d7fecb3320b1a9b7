"""The training ladder's LaTeX table (:mod:`shearbridge.steps.converge`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shearbridge.paper.outputs import fmt_int, fmt_pm
from shearbridge.paper.tables import fit_width

__all__ = ["converge_table"]


def converge_table(seeds: Mapping[str, Mapping[str, Any]]) -> str:
    """The training ladder as read (:func:`shearbridge.steps.converge.summarize_ladder`): per seed
    and rung, the validation error (the mean of ``(e/sigma_CRLB)^2``) and its ratio to the
    previous rung, with the one-core training minutes; a dash where a seed has fewer than two
    rungs."""
    head = "seed & steps & validation error & ratio to the previous rung & training (core-min) \\\\"
    rows = ["\\begin{tabular}{rrrrr}", "\\toprule", head, "\\midrule"]
    for seed, e in seeds.items():
        for k, steps in enumerate(e["rungs"]):
            ratio = (
                fmt_pm(e["ratios"][k - 1], e["ratio_errors"][k - 1])
                if k and "ratios" in e
                else "--"
            )
            cells = [
                seed if k == 0 else "",
                fmt_int(steps),
                fmt_pm(e["points"][k], e["point_errors"][k]),
                ratio,
                f"{e['train_seconds'][k] / 60:.1f}",
            ]
            rows.append(" & ".join(cells) + " \\\\")
    if not any(e["rungs"] for e in seeds.values()):
        rows.append("\\multicolumn{5}{c}{no rung of this code in the store} \\\\")
    rows += ["\\bottomrule", "\\end{tabular}"]
    return fit_width("\n".join(rows))

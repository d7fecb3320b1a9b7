"""LaTeX tables of the manuscript, built from summaries and models (written by the number scripts)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shearbridge.paper.outputs import fmt_noise, fmt_pm

__all__ = ["bias_table", "layer_table", "BASELINE_BLOCKS"]

#: EnhancedGalaxyNN's layers and the JAX building block each one is (the translation table).
BASELINE_BLOCKS = {
    "conv1": "\\texttt{lax.conv\\_general\\_dilated} (SAME)", "relu1": "\\texttt{jax.nn.relu}",
    "pool1": "\\texttt{nn.avg\\_pool} (VALID, aliasing)", "conv2": "\\texttt{lax.conv\\_general\\_dilated} (SAME)",
    "relu2": "\\texttt{jax.nn.relu}", "pool2": "\\texttt{nn.avg\\_pool} (VALID, aliasing)",
    "flatten": "reshape", "dense1": "\\texttt{nn.Dense} (matrix product)", "relu3": "\\texttt{jax.nn.relu}",
    "out": "\\texttt{nn.Dense} (linear read-out)",
}


def bias_table(bias: Mapping[str, Mapping[str, Mapping[str, Any]]], tags: Sequence[str],
               label: Callable[[str], str]) -> str:
    """m1, m2, c1, c2 (with errors) of every method at every noise tag, one row each."""
    rows = ["\\begin{tabular}{llcccc}", "\\toprule",
            "method & $\\sigma_n$ & $m_1$ & $m_2$ & $c_1$ & $c_2$ \\\\", "\\midrule"]
    for m, per in bias.items():
        for tag in tags:
            r = per[tag]
            cells = [fmt_pm(r[k], r[f"{k}_err"], err_digits=2) for k in ("m1", "m2", "c1", "c2")]
            rows.append(f"{label(m)} & {fmt_noise(r['noise_sigma'])} & " + " & ".join(cells) + " \\\\")
    rows += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(rows)


def layer_table(shapes: Mapping[str, Sequence[int]], blocks: Mapping[str, str]) -> str:
    """One row per layer: name, building block, output shape (without the batch axis)."""
    rows = ["\\begin{tabular}{lll}", "\\toprule", "layer & building block & output shape \\\\", "\\midrule"]
    for name, op in blocks.items():
        shape = "$" + "\\times".join(str(n) for n in shapes[name]) + "$"
        rows.append(f"\\texttt{{{name}}} & {op} & {shape} \\\\")
    rows += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(rows)

"""Figure: NumPy -> JAX/Flax translation check, observed error vs the float32 bound.

Reads ``src/data/summary/translation.json`` (the Snakefile's ``translation`` rule:
``shearbridge.models.parity.translation_table``). One point per case: the largest
difference between JAX/Flax and the float64 NumPy reference, in units of the
float32 unit round-off u, against the worst-case bound gamma_n (also in u).
Run on its own: ``python src/scripts/fig_translation.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json

U = 2.0**-24
FLOOR = 0.03  # exact results (max_pool, relu) are drawn at the floor


def group(op: str) -> str:
    if op.startswith("jax.nn"):
        return "activations (+ grads)"
    return op.replace("flax.linen.", "nn.").replace("lax.conv_general_dilated", "lax.conv")


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    rows = load_summary_json("translation")["rows"]
    groups = sorted(
        {group(r["op"]) for r in rows},
        key=lambda g: [r["op"] for r in rows].index(
            next(r["op"] for r in rows if group(r["op"]) == g)
        ),
    )
    fig, ax = plt.subplots(figsize=(plotting.COLUMN_WIDTH_IN, 2.6))
    for j, (g, style) in enumerate(zip(groups, plotting.series_styles())):
        sel = [r for r in rows if group(r["op"]) == g]
        obs = np.array([r["max_rel_diff"] for r in sel]) / U
        tol = np.array([r["tolerance"] for r in sel]) / U
        x = j + np.linspace(-0.25, 0.25, len(sel))
        ax.plot(
            x,
            np.maximum(obs, FLOOR),
            ls="none",
            marker=style["marker"],
            color=style["color"],
            mfc="none",
            label=None,
        )
        ax.plot(x, np.maximum(tol, FLOOR), ls="none", marker="_", color="0.3", ms=6)
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    ax.set(yscale="log", ylabel=r"max $|\Delta| / A$  [units of $u=2^{-24}$]", ylim=(0.02, 5000))
    ax.minorticks_off()
    # exact results sit on the floor, which the y axis names; the key sits above the axes
    ax.set_yticks(
        [FLOOR, 0.1, 1, 10, 100, 1000], ["exact", *(rf"$10^{{{k}}}$" for k in range(-1, 4))]
    )
    ax.legend(
        [
            Line2D([], [], ls="none", marker="o", mfc="none", color="0.3"),
            Line2D([], [], ls="none", marker="_", ms=6, color="0.3"),
        ],
        ["observed (one per case)", r"float32 bound $\gamma_n$"],
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=2,
        borderaxespad=0.2,
        handletextpad=0.3,
        columnspacing=1.0,
    )
    fig.tight_layout(pad=0.3)
    plotting.save(fig, "fig_translation")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

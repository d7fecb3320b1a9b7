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


def group(op: str) -> str:
    if op.startswith("jax.nn"):
        return "activations (+ grads)"
    return op.replace("flax.linen.", "nn.").replace("lax.conv_general_dilated", "lax.conv")


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    rows = load_summary_json("translation")["rows"]
    groups = sorted({group(r["op"]) for r in rows}, key=lambda g: [r["op"] for r in rows].index(
        next(r["op"] for r in rows if group(r["op"]) == g)))
    fig, ax = plt.subplots(figsize=(plotting.COLUMN_WIDTH_IN, 2.6))
    for j, (g, style) in enumerate(zip(groups, plotting.series_styles())):
        sel = [r for r in rows if group(r["op"]) == g]
        obs = np.array([r["max_rel_diff"] for r in sel]) / U
        tol = np.array([r["tolerance"] for r in sel]) / U
        x = j + np.linspace(-0.25, 0.25, len(sel))
        floor = 0.03  # exact results (max_pool, relu) are drawn at the floor
        ax.plot(x, np.maximum(obs, floor), ls="none", marker=style["marker"], color=style["color"], mfc="none",
                label=None)
        ax.plot(x, np.maximum(tol, floor), ls="none", marker="_", color="0.3", ms=6)
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    ax.set(yscale="log", ylabel=r"max $|\Delta| / A$  [units of $u=2^{-24}$]", ylim=(0.02, 5000))
    ax.minorticks_off()
    ax.text(0.02, 0.97, "markers: observed; bars: float32 bound $\\gamma_n$\n(exact results drawn at the floor)",
            transform=ax.transAxes, va="top", fontsize=6.5)
    fig.tight_layout()
    plotting.save(fig, "fig_translation")


if __name__ == "__main__":
    main()

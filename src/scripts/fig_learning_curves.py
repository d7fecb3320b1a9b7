"""Figure: RMSE/CRLB of the baseline and ShapeNet against the training compute they were given.

Reads ``src/data/summary/learning.json`` (every per-epoch snapshot evaluated on
the comparison set). One panel per noise level; the bottom axis is training
FLOPs, the top one the equivalent sample-steps of the baseline. The dotted
vertical line marks the largest budget both networks reached (the matched
comparison). Run on its own: ``python src/scripts/fig_learning_curves.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    s = load_summary_json("learning")
    tags = sorted(s["curves"], key=float)
    fig, axes = plt.subplots(1, len(tags), figsize=(plotting.COLUMN_WIDTH_IN, 2.3), sharey=True,
                             squeeze=False)
    for ax, tag in zip(axes[0], tags):
        for name, c in sorted(s["curves"][tag].items()):
            style = plotting.method_style(name)
            pts = c["points"]
            x = np.array([p["train_flops"] for p in pts])
            ax.errorbar(x, [p["ratio"] for p in pts], [p["ratio_err"] for p in pts], color=style["color"],
                        ls=style["linestyle"], marker=style["marker"], ms=3, label=plotting.method_label(name))
        ax.axvline(s["matched"][tag]["train_flops"], color="0.5", ls=":", lw=1)
        ax.axhline(1, color="0.4", ls="--", lw=1)
        exp = round(np.log10(float(tag)))
        ax.set(xscale="log", yscale="log", xlabel="training FLOPs",
               title=rf"$\sigma_n = 10^{{{exp}}}$")
        ax.xaxis.set_minor_formatter(NullFormatter())  # within one decade, minor labels collide
    axes[0][0].set_ylabel(r"RMSE / $\sigma_{\rm CRLB}$")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(w_pad=0.3, rect=(0, 0, 1, 0.9))
    plotting.save(fig, "fig_learning_curves")


if __name__ == "__main__":
    main()

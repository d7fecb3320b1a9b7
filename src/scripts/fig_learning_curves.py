"""Figure: RMSE/CRLB of the baseline and ShapeNet against the training compute they were given.

Reads ``src/data/summary/learning.json`` (every per-epoch snapshot evaluated on
the comparison set). One panel per noise level, titled with the median matched-filter S/N of
the comparison galaxies (``compare.json``); the bottom axis is training FLOPs.

The matched comparison (``matched`` in the JSON) is read at the largest budget
every network reached, i.e. the smallest of the networks' final budgets. When the
networks train for the same sample-steps (the paper profile: same epochs, same
objects, no early stop), that budget *is* the cheaper network's last epoch and the
other's last epoch lies within a per cent of it (their FLOPs per sample differ by
that much), so a line there would only repeat the last points. It is drawn, dotted
and labelled "equal compute", only where it falls visibly before some network's
last snapshot (:data:`VISIBLE`, e.g. when early stopping ends one run sooner).
Run on its own: ``python src/scripts/fig_learning_curves.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json

VISIBLE = 1.1  # draw the matched budget when some network's last snapshot is > 10% beyond it


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    s = load_summary_json("learning")
    snr = load_summary_json("compare")["snr_mf"]  # median matched-filter S/N, comparison galaxies
    tags = sorted(s["curves"], key=float)
    fig, axes = plt.subplots(
        1, len(tags), figsize=(plotting.COLUMN_WIDTH_IN, 2.4), sharey=True, squeeze=False
    )
    for ax, tag in zip(axes[0], tags):
        last = []
        for name, c in sorted(s["curves"][tag].items()):
            style = plotting.method_style(name)
            pts = c["points"]
            x = np.array([p["train_flops"] for p in pts])
            last.append(x[-1])
            ax.errorbar(
                x,
                [p["ratio"] for p in pts],
                [p["ratio_err"] for p in pts],
                color=style["color"],
                ls=style["linestyle"],
                marker=style["marker"],
                ms=3,
                label=plotting.method_label(name),
            )
        budget = s["matched"][tag]["train_flops"]
        if max(last) > VISIBLE * budget:
            ax.axvline(budget, color="0.5", ls=":", lw=1)
            ax.text(
                budget,
                0.97,
                "equal compute ",
                transform=ax.get_xaxis_transform(),
                rotation=90,
                ha="right",
                va="top",
                color="0.3",
            )
        ax.axhline(1, color="0.4", ls="--", lw=1)
        exp = round(np.log10(float(tag)))
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="training FLOPs",
            title=rf"$\sigma_n = 10^{{{exp}}}$"
            + "\n"
            + rf"S/N$\approx${plotting.snr_label(snr[tag]['median'])}",
        )
        ax.xaxis.set_minor_formatter(NullFormatter())  # within one decade, minor labels collide
    axes[0][0].set_ylabel(r"RMSE / $\sigma_{\rm CRLB}$")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=2, loc="upper center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(w_pad=0.3, rect=(0, 0, 1, 0.9))
    plotting.save(fig, "fig_learning_curves")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

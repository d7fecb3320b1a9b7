"""Figure: speed against accuracy, one point per method, at low and at high pixel noise.

x: galaxies per second (``src/data/summary/timing.json``: all methods timed side
by side in one process; error bar: error of the median over rounds). y: RMSE(g)
over the RMS per-galaxy Cramer-Rao bound on the galaxies no method flags
(``src/data/summary/compare.json``; bootstrap error). Up-left is slow and imprecise, down-right fast
and at the bound: the lower-right envelope of the points is the Pareto front. A method missing from
the comparison is left out (and said so on stdout).
Run on its own: ``python src/scripts/fig_speed_accuracy.py``.
"""

import math

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    compare = load_summary_json("compare")
    timing, common, snr = load_summary_json("timing"), compare["common"], compare["snr_mf"]
    tags = sorted(timing["speed"], key=lambda tag: float(tag))
    fig, axes = plt.subplots(
        1, len(tags), figsize=(plotting.COLUMN_WIDTH_IN, 2.8), sharey=True, squeeze=False
    )
    for ax, tag in zip(axes[0], tags):
        for m in timing["methods"]:
            r = timing["speed"][tag][m]
            acc = common.get(tag, {}).get("methods", {}).get(m)
            if acc is None:
                print(f"fig_speed_accuracy: no RMSE/CRLB of {m} at {tag}; left out")
                continue
            st = plotting.method_style(m)
            ax.errorbar(
                r["median"],
                acc["ratio"],
                xerr=r["err"],
                yerr=acc["ratio_err"],
                ls="none",
                marker=st["marker"],
                color=st["color"],
                ms=4,
                label=plotting.method_label(m),
            )
        ax.axhline(1, color="0.4", ls="--", lw=0.8)
        ax.margins(x=0.2, y=0.15)  # keep the end markers inside the axes
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="galaxies / s",
            title=(
                rf"$\sigma_n = 10^{{{round(math.log10(float(tag)))}}}$, "
                rf"S/N$\approx${plotting.snr_label(snr[tag]['median'])}"
            ),
        )
    axes[0][0].set_ylabel(r"RMSE / $\sigma_{\rm CRLB}$")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(w_pad=0.3, rect=(0, 0, 1, 0.78))
    plotting.save(fig, "fig_speed_accuracy")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

"""Figure: EnhancedGalaxyNN training and validation loss per epoch, per noise level.

Reads ``src/data/summary/baseline.json``; each noise level's legend entry gives the median
matched-filter S/N of the comparison galaxies (``compare.json``). Run on its own:
``python src/scripts/fig_baseline_training.py``.
"""

import numpy as np

from shearbridge.config import noise_tag
from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    summary = load_summary_json("baseline")
    snr = load_summary_json("compare")["snr_mf"]  # median matched-filter S/N, comparison galaxies
    fig, ax = plt.subplots(figsize=(plotting.COLUMN_WIDTH_IN, 2.6))
    runs = sorted(summary["noise"].values(), key=lambda r: r["noise_sigma"])
    for run, style in zip(runs, plotting.series_styles()):
        hist = [h for h in run["history"] if h["epoch"] > 0]
        ep = np.array([h["epoch"] for h in hist])
        label = (
            rf"$10^{{{np.log10(run['noise_sigma']):.0f}}}$ "  # "sigma_n =" is in the legend title
            rf"(S/N$\approx${plotting.snr_label(snr[noise_tag(run['noise_sigma'])]['median'])})"
        )
        ax.plot(
            ep,
            [h["train_loss"] for h in hist],
            color=style["color"],
            ls=style["linestyle"],
            lw=0.9,
            alpha=0.6,
        )
        ax.plot(
            ep,
            [h["val_loss"] for h in hist],
            color=style["color"],
            ls=style["linestyle"],
            marker=style["marker"],
            label=label,
        )
        best = run["best_epoch"]
        ax.plot(
            [best],
            [next(h["val_loss"] for h in hist if h["epoch"] == best)],
            marker="*",
            color=style["color"],
            ms=8,
            ls="none",
        )
    ax.set(xlabel="epoch", ylabel="MSE of standardised labels", yscale="log")
    # above the axes: the curves keep the whole panel
    ax.legend(
        title=r"$\sigma_n$ (validation: markers; training: thin)",
        title_fontsize=7,
        ncol=(len(runs) + 1) // 2,  # with their S/N, two rows
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        borderaxespad=0.2,
        handlelength=2.6,
        handletextpad=0.4,
        columnspacing=1.0,
    )
    fig.tight_layout(pad=0.3)
    plotting.save(fig, "fig_baseline_training")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

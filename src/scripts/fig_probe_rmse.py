"""Figure: how well (g1, g2) can be decoded from each layer's frozen activations.

Reads ``src/data/summary/diagnosis.json``. RMSE (over g1 and g2, test stamps) of a ridge
linear probe (top) and of a one-hidden-layer MLP probe (bottom) trained on each layer of
the EnhancedGalaxyNN trained at that noise level; the network's own RMSE is marked at the
right edge (open markers), the prior's spread (predicting the mean) as a grey line. Each noise
level's legend entry gives the median matched-filter S/N of the comparison galaxies
(``compare.json``). Layers
wider than the probe width (``probes.dim`` in the JSON) are feature-hashed to it.
One column wide: the two panels are stacked and share the layer axis; one legend above.
Run on its own: ``python src/scripts/fig_probe_rmse.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json


def rms(pair: list[float]) -> float:
    return float(np.sqrt(np.mean(np.square(pair))))


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullLocator

    s = load_summary_json("diagnosis")
    snr = load_summary_json("compare")["snr_mf"]  # median matched-filter S/N, comparison galaxies
    probes, layers = s["probes"], s["layers"]
    x = np.arange(len(layers))
    fig, axes = plt.subplots(
        2, 1, figsize=(plotting.COLUMN_WIDTH_IN, 3.9), sharex=True, sharey=True
    )
    for ax, kind, title in zip(axes, ("linear", "mlp"), ("linear (ridge) probe", "MLP probe")):
        for tag, sigma, style in zip(s["noise_tags"], s["noise_grid"], plotting.series_styles()):
            p = probes[tag]
            y = [rms(p[kind][layer]) for layer in layers]
            ax.plot(
                x,
                y,
                color=style["color"],
                ls=style["linestyle"],
                marker=style["marker"],
                label=rf"$\sigma_n=10^{{{np.log10(sigma):.0f}}}$ "
                rf"(S/N$\approx${plotting.snr_label(snr[tag]['median'])})",
            )
            ax.plot(
                [x[-1] + 0.6],
                [rms(p["network"])],
                marker=style["marker"],
                color=style["color"],
                mfc="none",
                ms=5,
                ls="none",
                clip_on=False,
            )
        ax.axhline(rms(probes["prior_rmse"]), color="0.5", lw=0.7, ls=":", zorder=0)
        ax.set_title(title, loc="left", pad=2)
        ax.set_yscale("log")
        ax.set_ylabel(r"test RMSE of $(g_1, g_2)$")
    axes[-1].set_xticks(x, layers, rotation=45, ha="right", rotation_mode="anchor")
    for ax in axes:
        ax.xaxis.set_minor_locator(NullLocator())  # one tick per layer
    axes[-1].set_xlim(-0.4, len(layers) - 0.1)
    handles, _ = axes[0].get_legend_handles_labels()
    handles += [
        Line2D([], [], color="0.5", lw=0.7, ls=":", label="prior spread"),
        Line2D([], [], color="0.3", marker="o", mfc="none", ls="none", label="network output"),
    ]
    # two columns: a noise level's entry with its S/N is half the column wide
    leg = fig.legend(
        handles=handles,
        loc="upper center",
        ncol=2,
        bbox_to_anchor=(0.5, 1.0),
        handlelength=2.2,
        columnspacing=1.0,
        borderaxespad=0.1,
    )
    fig.canvas.draw()  # the legend's height, to keep the panels below it
    top = 1 - leg.get_window_extent().height / fig.bbox.height - 0.02
    fig.tight_layout(pad=0.3, h_pad=0.4, rect=(0, 0, 1, top))
    plotting.save(fig, "fig_probe_rmse")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

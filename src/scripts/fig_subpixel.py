"""Figure: sub-pixel sensitivity of average pooling vs anti-aliased blur pooling.

Reads ``src/data/summary/diagnosis.npz`` and ``diagnosis.json``. The conv/pool stack of
EnhancedGalaxyNN (random initialisation; the same conv weights for both poolings) is fed
round Gaussian galaxies shifted by 0..1 px along x. (a) relative change of the pool2 maps,
with the change caused by g1 = +-0.01 as horizontal lines; (b) relative variation of the
per-channel energies of pool2 (invariant to whole-pixel shifts, so any variation is
aliasing); (c) the shear that changes the channel energies as much as the worst shift,
per layer. Solid: average pooling; dashed: blur pooling.
Run on its own: ``python src/scripts/fig_subpixel.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json, load_summary_npz

NET = "random"
FLOOR = 1e-7  # smaller equivalent shears (conv1: exact shift invariance) drawn at the floor


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    z = load_summary_npz("diagnosis")
    s = load_summary_json("diagnosis")["subpixel"]
    layers, sizes = s["layers"], z["subpixel_sizes_arcsec"]
    deltas = z["subpixel_deltas_px"]
    i_pool2 = layers.index("pool2")
    fig, axes = plt.subplots(1, 3, figsize=(plotting.PAGE_WIDTH_IN, 2.35))
    styles = list(zip(sizes, plotting.series_styles()))
    for size, st in styles:
        i = list(sizes).index(size)
        for pool, ls in (("avg", "-"), ("blur", "--")):
            key = f"subpixel_{NET}_{pool}"
            kw = {"color": st["color"], "ls": ls, "marker": st["marker"], "ms": 2.5}
            label = rf"$\sigma_g={size:.2f}''$" if pool == "avg" else None
            axes[0].plot(deltas[1:], z[f"{key}_rel_change"][i, i_pool2][1:], label=label, **kw)
            axes[0].axhline(z[f"{key}_shear_signal"][i, i_pool2] * 2, color=st["color"], ls=ls, lw=0.5)
            axes[1].plot(deltas[1:], z[f"{key}_energy_var"][i, i_pool2][1:], **kw)
            g = z[f"{key}_g_equiv"][i]
            axes[2].plot(np.arange(len(layers)), np.maximum(g, FLOOR), **kw)
            low = np.flatnonzero(g < FLOOR)
            axes[2].plot(low, np.full(len(low), FLOOR), ls="none", marker="v", color=st["color"], ms=4)
    axes[0].set(xlabel=r"shift $\delta$ (input px)", ylabel=r"$\|h(\delta)-h(0)\|/\|h(0)\|$, pool2",
                yscale="log")
    axes[2].legend(*axes[0].get_legend_handles_labels(), loc="lower right", fontsize=6)
    axes[0].text(0.03, 0.95, r"thin: $g_1$ change by 0.02", transform=axes[0].transAxes, fontsize=5.5, va="top")
    axes[1].set(xlabel=r"shift $\delta$ (input px)", ylabel="channel-energy variation, pool2", yscale="log")
    axes[1].text(0.03, 0.95, "solid: avg pool\ndashed: blur pool", transform=axes[1].transAxes,
                 fontsize=5.5, va="top")
    axes[2].set_xticks(np.arange(len(layers)), layers, rotation=45, ha="right")
    axes[2].minorticks_off()
    axes[2].set(ylabel=r"equivalent $|g_1|$ of the worst shift", yscale="log", ylim=(FLOOR / 3, None))
    for ax, letter in zip(axes, "abc"):
        ax.set_title(f"({letter})", fontsize=7, loc="left")
    fig.tight_layout(pad=0.3, w_pad=0.6)
    plotting.save(fig, "fig_subpixel")


if __name__ == "__main__":
    main()

"""Figure: sub-pixel sensitivity of average pooling vs anti-aliased blur pooling.

Reads ``src/data/summary/diagnosis.npz`` and ``diagnosis.json``. The conv/pool stack of
EnhancedGalaxyNN (random initialisation; the same conv weights for both poolings) is fed
round Gaussian galaxies shifted by 0..1 px along x. (a) relative change of the pool2 maps,
with the change caused by g1 = +-0.01 as thin horizontal lines; (b) relative variation of
the per-channel energies of pool2 (invariant to whole-pixel shifts, so any variation is
aliasing); (c) the shear that changes the channel energies as much as the worst shift,
per layer. Solid: average pooling; dashed: blur pooling. Full text width (``figure*``):
three panels side by side, one legend above them.
Run on its own: ``python src/scripts/fig_subpixel.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json, load_summary_npz

NET = "random"
FLOOR = 1e-7  # smaller equivalent shears (conv1: exact shift invariance) drawn at the floor
POOLS = (("avg", "-", "average pooling"), ("blur", "--", "blur pooling"))


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullLocator

    z = load_summary_npz("diagnosis")
    s = load_summary_json("diagnosis")["subpixel"]
    layers, sizes = s["layers"], z["subpixel_sizes_arcsec"]
    deltas = z["subpixel_deltas_px"]
    i_pool2 = layers.index("pool2")
    fig, axes = plt.subplots(1, 3, figsize=(plotting.PAGE_WIDTH_IN, 2.55))
    handles = []
    for i, (size, st) in enumerate(zip(sizes, plotting.series_styles())):
        for pool, ls, _ in POOLS:
            key = f"subpixel_{NET}_{pool}"
            kw = {"color": st["color"], "ls": ls, "marker": st["marker"], "ms": 3}
            axes[0].plot(deltas[1:], z[f"{key}_rel_change"][i, i_pool2][1:], **kw)
            axes[0].axhline(
                z[f"{key}_shear_signal"][i, i_pool2] * 2, color=st["color"], ls=ls, lw=0.6
            )
            axes[1].plot(deltas[1:], z[f"{key}_energy_var"][i, i_pool2][1:], **kw)
            g = z[f"{key}_g_equiv"][i]
            axes[2].plot(np.arange(len(layers)), np.maximum(g, FLOOR), **kw)
            low = np.flatnonzero(g < FLOOR)
            axes[2].plot(
                low, np.full(len(low), FLOOR), ls="none", marker="v", color=st["color"], ms=4
            )
        handles.append(
            Line2D(
                [],
                [],
                color=st["color"],
                marker=st["marker"],
                ms=3,
                ls="none",
                label=rf"$\sigma_g={size:.2f}''$",
            )
        )
    handles += [Line2D([], [], color="0.2", ls=ls, label=label) for _, ls, label in POOLS]
    handles.append(
        Line2D([], [], color="0.2", lw=0.6, label=r"thin lines in (a): $\Delta g_1 = 0.02$")
    )
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=len(handles),
        bbox_to_anchor=(0.5, 1.0),
        handlelength=2.2,
        columnspacing=1.2,
        borderaxespad=0.1,
    )
    axes[0].set(
        xlabel=r"shift $\delta$ (input px)",
        ylabel=r"$\|h(\delta)-h(0)\|\,/\,\|h(0)\|$ of pool2",
        yscale="log",
    )
    axes[1].set(
        xlabel=r"shift $\delta$ (input px)",
        ylabel="channel-energy variation of pool2",
        yscale="log",
    )
    axes[2].set_xticks(
        np.arange(len(layers)), layers, rotation=45, ha="right", rotation_mode="anchor"
    )
    axes[2].xaxis.set_minor_locator(NullLocator())  # one tick per layer
    axes[2].set(
        ylabel=r"equivalent $|g_1|$ of the worst shift", yscale="log", ylim=(FLOOR / 3, None)
    )
    for ax, letter in zip(axes, "abc"):
        ax.set_title(f"({letter})", loc="left")
    fig.tight_layout(pad=0.3, w_pad=0.8, rect=(0, 0, 1, 0.93))
    plotting.save(fig, "fig_subpixel")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

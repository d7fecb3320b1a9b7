"""Figure: shear Fisher information retained per layer, baseline (EnhancedGalaxyNN) and ShapeNet.

Reads ``src/data/summary/diagnosis.json`` (from ``shearbridge.steps.diagnose.run_diagnosis``).
Retained fraction = ratio of Cramer-Rao variances of (g1, g2), image over layer, for the
pixels of a window around the galaxy, the network linearised at noisy stamps (lines,
filled markers) and at the clean stamps (open markers). Top: flux, centroid and size
marginalised with Gaussian priors of the population's spread; bottom: nuisances known.
One column per network in the summary's ``networks`` (the baseline at every noise
level, ShapeNet at the lowest and 1e-3: its uncropped feature maps cost several times
more); a noise level keeps its colour, line style and marker in both columns, and its legend
entry gives the median matched-filter S/N of the comparison galaxies (``compare.json``).
Run on its own: ``python src/scripts/fig_information_per_layer.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json

FLOOR = 1e-4  # values below are drawn at the floor with a downward marker

MODES = (("prior", "nuisances marginalised\n(population priors)"), ("fixed", "nuisances known"))
SHORT = {"prior": "(nuisances marginalised)", "fixed": "(nuisances known)"}


def networks(s: dict) -> dict:
    """Per network: layers, noise levels and information (older summaries: the baseline only)."""
    if "networks" in s:
        return s["networks"]
    return {"baseline": {k: s[k] for k in ("layers", "noise_grid", "noise_tags", "information")}}


def panel(ax, net: dict, mode: str, styles: dict, log: bool, snr: dict) -> None:
    x = np.arange(len(net["layers"]))
    for tag, sigma in zip(net["noise_tags"], net["noise_grid"]):
        style = styles[tag]
        info = net["information"][tag]
        noisy = np.array(info["noisy"][mode]["mean"])
        clean = np.array(info["clean"][mode]["mean"])
        lo, hi = np.array(info["noisy"][mode]["p16"]), np.array(info["noisy"][mode]["p84"])
        ax.plot(
            x,
            np.maximum(noisy, FLOOR) if log else noisy,
            color=style["color"],
            ls=style["linestyle"],
            marker=style["marker"],
            label=rf"$\sigma_n=10^{{{np.log10(sigma):.0f}}}$ "
            rf"(S/N$\approx${plotting.snr_label(snr[tag]['median'])})",
        )
        ax.fill_between(
            x, np.maximum(lo, FLOOR) if log else lo, hi, color=style["color"], alpha=0.12, lw=0
        )
        ax.plot(
            x,
            np.maximum(clean, FLOOR) if log else clean,
            ls="none",
            marker=style["marker"],
            mfc="none",
            color=style["color"],
            ms=5,
        )
        low = noisy < FLOOR
        if log and low.any():
            ax.plot(
                x[low], np.full(low.sum(), FLOOR), ls="none", marker="v", color=style["color"], ms=4
            )
    if log:
        ax.set_yscale("log")
        ax.set_ylim(FLOOR / 2, 2.0)
    else:
        ax.set_ylim(0, 1.08)
    ax.axhline(1.0, color="0.6", lw=0.5, zorder=0)


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    s = load_summary_json("diagnosis")
    snr = load_summary_json("compare")["snr_mf"]  # median matched-filter S/N, comparison galaxies
    nets = networks(s)
    all_tags = sorted({t for n in nets.values() for t in n["noise_tags"]}, key=float)
    styles = dict(zip(all_tags, plotting.series_styles()))
    ncol = len(nets)
    width = plotting.COLUMN_WIDTH_IN if ncol == 1 else plotting.PAGE_WIDTH_IN
    fig, axes = plt.subplots(
        2, ncol, figsize=(width, 3.9), sharex="col", sharey="row", squeeze=False
    )
    for r, (mode, title) in enumerate(MODES):
        values = [
            np.array(n["information"][t][p][mode]["mean"])
            for n in nets.values()
            for t in n["noise_tags"]
            for p in ("noisy", "clean")
        ]
        log = min(v.min() for v in values) < 0.05  # log axis when the values span decades
        for c, (name, net) in enumerate(nets.items()):
            ax = axes[r, c]
            panel(ax, net, mode, styles, log, snr)
            if ncol == 1:
                ax.set_title(title, fontsize=7, loc="left")
            elif r == 0:
                ax.set_title(plotting.method_label(name), fontsize=8)
            if c == 0:
                ax.set_ylabel(
                    "retained fraction" if ncol == 1 else f"retained fraction\n{SHORT[mode]}"
                )
    for c, net in enumerate(nets.values()):
        x = np.arange(len(net["layers"]))
        axes[1, c].set_xticks(x, net["layers"], rotation=45, ha="right")
        axes[1, c].minorticks_off()
        axes[1, c].set_xlabel(
            f"layer ({s['sizes']['n_fisher']} galaxies, "
            f"{s['sizes']['window_px']}x{s['sizes']['window_px']} px window)"
        )
    handles = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    # the key of the markers (noisy vs clean stamps) joins the noise levels in one legend above
    # the panels
    handles["noisy stamps"] = Line2D([], [], color="0.3", marker="o", ms=4)
    handles["clean stamps"] = Line2D([], [], color="0.3", marker="o", mfc="none", ls="none", ms=5)
    # with their S/N the noise levels fill the page width in two rows (one column: three rows)
    n_leg = (len(handles) + 1) // 2 if ncol > 1 else (len(handles) + 2) // 3
    leg = fig.legend(
        handles.values(),
        handles.keys(),
        loc="upper center",
        ncol=n_leg,
        borderaxespad=0.1,
        handlelength=2.6,
        columnspacing=1.2,
    )
    fig.canvas.draw()  # the legend's height, to keep the panels below it
    top = 1 - leg.get_window_extent().height / fig.bbox.height - 0.01
    fig.tight_layout(pad=0.3, h_pad=0.4, w_pad=0.6, rect=(0, 0, 1, top))
    plotting.save(fig, "fig_information_per_layer")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

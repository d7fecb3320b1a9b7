"""Figure: RMSE(g) over the per-galaxy Cramer-Rao bound in every cell of the population study.

Reads ``src/data/summary/population.json``. One panel per galaxy family (rows) and PSF family
(columns), held-out families shaded; in each, every method's RMSE/CRLB against the cell's median
matched-filter S/N (the network: the mean over its seeds, the error bar its bootstrap and seed
error). Run on its own: ``python src/scripts/fig_population.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.stats.cells import REFERENCE
from shearbridge.summaries import load_summary_json
from shearbridge.summaries.population import FAMILY_LABELS, NETWORK, cell_methods, label


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    s = load_summary_json("population")
    cells = s["cells"]
    galaxies = list(dict.fromkeys(c["galaxy"] for c in cells))
    psfs = list(dict.fromkeys(c["psf"] for c in cells))
    fig, axes = plt.subplots(
        len(galaxies),
        len(psfs),
        figsize=(plotting.PAGE_WIDTH_IN, 1.7 * len(galaxies) + 0.6),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    methods = cell_methods()
    for (i, gal), (j, psf) in ((a, b) for a in enumerate(galaxies) for b in enumerate(psfs)):
        ax = axes[i, j]
        sub = sorted(
            (c for c in cells if c["galaxy"] == gal and c["psf"] == psf),
            key=lambda c: c["snr_median"],
        )
        if sub and sub[0]["group"] != "in":
            ax.set_facecolor("0.93")
        for m in methods:
            rows = [c for c in sub if "ratio" in c["methods"].get(m, {})]
            if not rows:
                continue
            style = plotting.method_style("moments_affine" if m == REFERENCE else m)
            ax.errorbar(
                [c["snr_median"] for c in rows],
                [c["methods"][m]["ratio"] for c in rows],
                [c["methods"][m]["ratio_err"] for c in rows],
                color=style["color"],
                marker=style["marker"],
                ls=":" if m == REFERENCE else style["linestyle"],
                ms=3,
                lw=1.6 if m == NETWORK else 0.9,
                label=label(m) if (i, j) == (0, 0) else None,
            )
        ax.axhline(1.0, color="k", lw=0.6, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        held = " (held out)" if sub and sub[0]["group"] != "in" else ""
        ax.set_title(
            f"{FAMILY_LABELS[gal]} / {FAMILY_LABELS[psf]}{held}".replace("\\'e", "\u00e9"),
            fontsize=7,
        )
        if j == 0:
            ax.set_ylabel("RMSE / CRLB")
        if i == len(galaxies) - 1:
            ax.set_xlabel("median matched-filter S/N")
    lo = min(
        c["methods"][m]["ratio"]
        for c in cells
        for m in methods
        if "ratio" in c["methods"].get(m, {})
    )
    axes[0, 0].set_ylim(0.5 * min(lo, 1.0), None)
    axes[0, 0].set_xticks([20, 200, 2000])
    axes[0, 0].set_xticklabels(["20", "200", "2000"])
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=int(np.ceil(len(labels) / 2)),
        fontsize=7,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (1.7 * len(galaxies) + 0.6)))
    plotting.save(fig, "fig_population")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

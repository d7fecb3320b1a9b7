"""Figure: shear Fisher information retained by each layer of EnhancedGalaxyNN, per noise level.

Reads ``src/data/summary/diagnosis.json`` (from ``shearbridge.diagnosis.run_diagnosis``).
Retained fraction = ratio of Cramer-Rao variances of (g1, g2), image over layer, for the
pixels of a window around the galaxy, the network linearised at noisy stamps (lines,
filled markers) and at the clean stamps (open markers). Left: flux, centroid and size
marginalised with Gaussian priors of the population's spread; right: nuisances known.
Run on its own: ``python src/scripts/fig_information_per_layer.py``.
"""

import numpy as np

from shearbridge import plotting
from shearbridge.summaries import load_summary_json

FLOOR = 1e-4  # values below are drawn at the floor with a downward marker


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    s = load_summary_json("diagnosis")
    layers = s["layers"]
    x = np.arange(len(layers))
    modes = (("prior", "nuisances marginalised\n(population priors)"), ("fixed", "nuisances known"))
    fig, axes = plt.subplots(2, 1, figsize=(plotting.COLUMN_WIDTH_IN, 3.9), sharex=True)
    for ax, (mode, title) in zip(axes, modes):
        values = [np.array(s["information"][t][p][mode]["mean"]) for t in s["noise_tags"]
                  for p in ("noisy", "clean")]
        log = min(v.min() for v in values) < 0.05  # log axis when the values span decades
        for tag, sigma, style in zip(s["noise_tags"], s["noise_grid"], plotting.series_styles()):
            info = s["information"][tag]
            noisy = np.array(info["noisy"][mode]["mean"])
            clean = np.array(info["clean"][mode]["mean"])
            lo, hi = np.array(info["noisy"][mode]["p16"]), np.array(info["noisy"][mode]["p84"])
            shown = np.maximum(noisy, FLOOR) if log else noisy
            ax.plot(x, shown, color=style["color"], ls=style["linestyle"], marker=style["marker"],
                    label=rf"$\sigma_n=10^{{{np.log10(sigma):.0f}}}$")
            ax.fill_between(x, np.maximum(lo, FLOOR) if log else lo, hi, color=style["color"], alpha=0.12, lw=0)
            ax.plot(x, np.maximum(clean, FLOOR) if log else clean, ls="none", marker=style["marker"],
                    mfc="none", color=style["color"], ms=5)
            low = noisy < FLOOR
            if log and low.any():
                ax.plot(x[low], np.full(low.sum(), FLOOR), ls="none", marker="v", color=style["color"], ms=4)
        ax.set_ylabel("retained fraction")
        ax.set_title(title, fontsize=7, loc="left")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(FLOOR / 2, 2.0)
        else:
            ax.set_ylim(0, 1.08)
        ax.axhline(1.0, color="0.6", lw=0.5, zorder=0)
    axes[0].legend(loc="lower left", ncol=2, fontsize=6)
    axes[1].set_xticks(x, layers, rotation=45, ha="right")
    axes[1].minorticks_off()
    axes[1].set_xlabel(f"layer ({s['sizes']['n_fisher']} galaxies, "
                       f"{s['sizes']['window_px']}x{s['sizes']['window_px']} px window)")
    fig.tight_layout(pad=0.3, h_pad=0.4)
    plotting.save(fig, "fig_information_per_layer")


if __name__ == "__main__":
    main()

"""Figure: effective source density lost against speed, every method at every noise level.

x: galaxies per second (``src/data/summary/timing.json``, all methods timed side by side; the
median over the timed levels). y: n_eff lost (%) against a perfect estimator
(``src/data/summary/yardstick.json``): the calibrated measurement noise over two noise
realisations of the same galaxies, against their Cramér–Rao bound, with the population's shape
noise; lost galaxies (flags) count in full. One line per method through its noise levels, the
marker size growing with the noise; bootstrap errors. A method without a timing, or whose response
cannot be calibrated at a level, is left out there (and said so on stdout).
Run on its own: ``python src/scripts/fig_neff.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    yard, timing = load_summary_json("yardstick"), load_summary_json("timing")
    tags = sorted(yard["levels"], key=float)
    fig, ax = plt.subplots(figsize=(plotting.COLUMN_WIDTH_IN, 3.3))
    for m, per in yard["yardstick"].items():
        rates = [
            timing["speed"][t][m]["median"] for t in timing["speed"] if m in timing["speed"][t]
        ]
        if not rates:
            print(f"fig_neff: no timing of {m}; left out")
            continue
        rate = float(np.median(rates))
        st = plotting.method_style(m)
        pts = [(i, per[t]) for i, t in enumerate(tags) if t in per and per[t]["calibratable"]]
        y = [r["neff_lost_pct"] for _, r in pts]
        ax.plot([rate] * len(y), y, color=st["color"], lw=0.6, ls=st["linestyle"])
        for k, (i, r) in enumerate(pts):
            ax.errorbar(
                rate,
                r["neff_lost_pct"],
                yerr=r["neff_lost_pct_err"],
                marker=st["marker"],
                color=st["color"],
                ms=2.5 + 1.2 * i,
                ls="none",
                label=plotting.method_label(m) if k == 0 else None,
            )
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.1, linscale=0.5)
    ax.set(xlabel="galaxies / s (one core)", ylabel=r"$n_{\rm eff}$ lost (%)")
    lost = [
        r["neff_lost_pct"]
        for per in yard["yardstick"].values()
        for r in per.values()
        if r["calibratable"]
    ]
    ax.set_ylim(bottom=min(0.0, 1.3 * min(lost)))  # a negative loss (see the caption) stays visible
    ax.axhline(0, color="0.4", lw=0.5)
    ax.margins(x=0.25)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.80))
    plotting.save(fig, "fig_neff")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

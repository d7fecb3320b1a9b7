"""Figure: RMSE(g) over the per-galaxy Cramer-Rao bound on each robustness set, per method.

Reads ``src/data/summary/robustness.json``. One panel per noise level; the
in-distribution ``test`` set is the first column. Absolute RMSE/CRLB of each set's own bound; a
point a method measured on fewer galaxies than the set has (it flagged the others) is labelled
with that number. Run on its own:
``python src/scripts/fig_robustness.py``.
"""

import math

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json

SET = {"test": "in-dist.", "test_exp": "exp", "test_sersic": "S\u00e9rsic", "test_bulge_disk": "bulge+disk",
       "test_moffat": "Moffat PSF", "test_wide_psf": "wide PSF"}


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    s = load_summary_json("robustness")
    snr = load_summary_json("compare")["snr_mf"]  # of the in-distribution (comparison) galaxies
    tags = sorted(s["noise"], key=lambda t: s["noise"][t]["noise_sigma"])
    sets, methods = s["datasets"], s["methods"]
    fig, axes = plt.subplots(len(tags), 1, figsize=(plotting.COLUMN_WIDTH_IN, 2.0 * len(tags) + 1.2),
                             sharex=True, squeeze=False)
    x = np.arange(len(sets))
    width = 0.6 / max(1, len(methods) - 1)
    for ax, tag in zip(axes[:, 0], tags):
        per = s["noise"][tag]["methods"]
        for i, m in enumerate(methods):
            style = plotting.method_style(m)
            rows = [per[m]["results"][d] for d in sets]
            xs = x - 0.3 + i * width
            ax.errorbar(xs, [r["ratio"] for r in rows], [r["ratio_err"] for r in rows],
                        color=style["color"], marker=style["marker"], ls="none", mfc="white" if i % 2 else None,
                        label=plotting.method_label(m))
            for xi, r in zip(xs, rows):
                if r.get("n_flagged", 0):
                    ax.annotate(str(r["n"]), (xi, r["ratio"]), xytext=(0, 4), textcoords="offset points",
                                ha="center", fontsize=7, color=style["color"])
        ax.axhline(1, color="0.4", ls="--", lw=0.8)
        ax.axvline(0.5, color="0.7", lw=0.5)
        ax.set_yscale("log")
        ax.set_ylabel(r"RMSE / $\sigma_{\rm CRLB}$")
        exp = round(math.log10(s["noise"][tag]["noise_sigma"]))
        ax.set_title(rf"$\sigma_n = 10^{{{exp}}}$ (in-distribution S/N$\approx${plotting.snr_label(snr[tag]['median'])})")
    axes[-1, 0].set_xticks(x, [SET.get(d, d) for d in sets], rotation=30, ha="right")
    axes[-1, 0].tick_params(axis="x", which="minor", bottom=False, top=False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=2, loc="upper center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(h_pad=1.2, rect=(0, 0, 1, 0.8))
    plotting.save(fig, "fig_robustness")


if __name__ == "__main__":
    main()

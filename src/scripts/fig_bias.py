"""Figure: multiplicative and additive shear bias against matched-filter S/N, with the LSST requirement.

Reads ``src/data/summary/bias.json`` (paired shear test at every noise level).
Panels: m1, m2 (top), c1, c2 (bottom) on linear axes, so every error bar is drawn to scale;
grey band: the LSST requirement. The horizontal axis is the median matched-filter S/N of the
shear-test galaxies. Run on its own: ``python src/scripts/fig_bias.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    s = load_summary_json("bias")
    req = s["requirements"]
    fig, axes = plt.subplots(2, 2, figsize=(plotting.COLUMN_WIDTH_IN, 3.6), sharex=True)
    for m, per in s["bias"].items():
        style = plotting.method_style(m)
        rs = sorted(per.values(), key=lambda r: r["median_snr_mf"])
        snr = np.array([r["median_snr_mf"] for r in rs])
        for ax, key in zip(axes.ravel(), ("m1", "m2", "c1", "c2")):
            ax.errorbar(snr, [r[key] for r in rs], [r[f"{key}_err"] for r in rs], color=style["color"],
                        ls=style["linestyle"], marker=style["marker"], lw=0.8, ms=3, capsize=1.5,
                        label=plotting.method_label(m))
    for ax, key in zip(axes.ravel(), ("m1", "m2", "c1", "c2")):
        r = req[key[0]]
        ax.axhspan(-r, r, color="0.8", lw=0, zorder=0)
        ax.axhline(0, color="0.4", lw=0.5)
        ax.set_xscale("log")
        ax.set_ylabel(f"${key[0]}_{key[1]}$")
    for ax in axes[1]:
        ax.set_xlabel(r"median S/N$_{\rm mf}$")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=2, loc="upper center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(w_pad=0.3, h_pad=0.3, rect=(0, 0, 1, 0.84))
    plotting.save(fig, "fig_bias")


if __name__ == "__main__":
    main()

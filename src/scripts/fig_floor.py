"""Figure: what sets the low-noise floor -- RMSE(g) over the Cramer-Rao bound against galaxy
size and against the flux that falls outside the stamp, at the lowest noise level.

Reads ``src/data/summary/floor.json`` (written by ``python -m shearbridge summarize
floor``). Left: bins of the true galaxy size (Gaussian sigma, pixels; the top bin is
the 5% largest), at each bin's median size. Right: bins of the out-of-stamp flux fraction of
the PSF-convolved galaxy, labelled by their upper edge. Filled markers and lines: RMS ratio
(bootstrap errors); open markers: the median ratio (``median |err|/CRLB / 0.674``). Dashed:
the bound. Run on its own: ``python src/scripts/fig_floor.py``.
"""

import math

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json


def _edge_label(x: float) -> str:
    return "1" if x >= 1 else rf"$10^{{{round(math.log10(x))}}}$"


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    s = load_summary_json("floor")["floor"]
    methods = s["methods"]
    fig, axes = plt.subplots(1, 2, figsize=(plotting.COLUMN_WIDTH_IN, 2.5), sharey=True)
    n_bins = len(s["flux_edges"]) - 1
    for i, m in enumerate(methods):
        style = plotting.method_style(m)
        kw = {"color": style["color"], "marker": style["marker"]}
        for ax, key in zip(axes, ("size_px", "out_flux")):
            rows = s["binned"][m][key]
            if key == "size_px":
                x = np.array([r["x_median"] for r in rows])
            else:  # categorical: bin index (empty bins are absent from rows)
                x = np.array([s["flux_edges"].index(r["lo"]) for r in rows], float) + 0.08 * (
                    i - 1.5
                )
            ax.errorbar(
                x,
                [r["rms_ratio"] for r in rows],
                [r["rms_ratio_err"] for r in rows],
                ls="-",
                lw=0.9,
                label=plotting.method_label(m) if key == "size_px" else None,
                **kw,
            )
            ax.plot(x, [r["median_ratio"] for r in rows], ls="none", mfc="white", **kw)
    for ax in axes:
        ax.axhline(1, color="0.4", ls="--", lw=0.8)
        ax.set_yscale("log")
    axes[0].set_xlabel("galaxy size $\\sigma$ (px)")
    axes[0].set_ylabel(r"RMSE / $\sigma_{\rm CRLB}$")
    axes[1].set_xticks(range(n_bins), [_edge_label(e) for e in s["flux_edges"][1:]], rotation=45)
    axes[1].tick_params(axis="x", which="minor", bottom=False, top=False)
    axes[1].set_xlabel("flux outside stamp ($\\leq$)")
    # the two markers' meaning, in the legend too
    axes[0].plot([], [], color="0.3", marker="o", ls="-", label="RMS")
    axes[0].plot([], [], color="0.3", marker="o", mfc="white", ls="none", label="median")
    handles, labels = axes[0].get_legend_handles_labels()
    order = sorted(
        range(len(labels)), key=lambda k: labels[k] in ("RMS", "median")
    )  # methods first
    handles, labels = [handles[k] for k in order], [labels[k] for k in order]
    fig.legend(
        handles,
        labels,
        ncol=3,
        loc="upper center",
        bbox_to_anchor=(0.5, 1.0),
        handlelength=1.5,
        columnspacing=0.8,
    )
    fig.tight_layout(w_pad=0.3, rect=(0, 0, 1, 0.83))
    plotting.save(fig, "fig_floor")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

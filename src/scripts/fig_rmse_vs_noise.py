"""Figure: RMSE(g) against pixel noise for every method, with the per-galaxy Cramer-Rao bound.

Reads ``src/data/summary/compare.json``. Every method is scored on the same galaxies (those no
method flags at that noise level). The band is the 16-84 per cent range of the per-galaxy bound
over the comparison set; the dashed line its RMS. The lower panel shows RMSE/RMS(CRLB). The top
axis gives the median matched-filter S/N of the galaxies. Run on its own:
``python src/scripts/fig_rmse_vs_noise.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    s = load_summary_json("compare")
    fig, (ax, axr) = plt.subplots(
        2,
        1,
        figsize=(plotting.COLUMN_WIDTH_IN, 5.0),
        sharex=True,
        gridspec_kw={"height_ratios": [2, 1]},
    )
    sig = np.array(
        sorted({r["noise_sigma"] for per in s["compare"].values() for r in per.values()})
    )
    unit = s["crlb_unit"]
    ax.fill_between(
        sig, unit["p16"] * sig, unit["p84"] * sig, color="0.85", lw=0, label="CRLB 16-84%"
    )
    ax.plot(sig, unit["rms"] * sig, color="0.4", ls="--", lw=1, label="CRLB (RMS)")
    common = s["common"]
    tags = sorted(common, key=lambda t: float(t))
    for m in s["compare"]:
        style = plotting.method_style(m)
        have = [t for t in tags if m in common[t]["methods"]]  # the levels the method runs at
        rs = [common[t]["methods"][m] for t in have]
        x = np.array([float(t) for t in have])
        ax.errorbar(
            x,
            [r["rmse_g"] for r in rs],
            [r["rmse_g_err"] for r in rs],
            color=style["color"],
            ls=style["linestyle"],
            marker=style["marker"],
            label=plotting.method_label(m),
        )
        axr.errorbar(
            x,
            [r["ratio"] for r in rs],
            [r["ratio_err"] for r in rs],
            color=style["color"],
            ls=style["linestyle"],
            marker=style["marker"],
        )
    k = float(np.median([s["snr_mf"][t]["median"] * float(t) for t in tags]))  # S/N_mf = k / sigma
    top = ax.secondary_xaxis(
        "top", functions=(lambda x: k / np.maximum(x, 1e-30), lambda y: k / np.maximum(y, 1e-30))
    )
    top.set_xlabel(r"median matched-filter S/N")
    axr.axhline(1, color="0.4", ls="--", lw=1)
    axr.axhline(2, color="0.6", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", ylabel=r"RMSE$(g)$")
    axr.set(
        xscale="log",
        yscale="log",
        xlabel=r"pixel noise $\sigma_n$ [image units]",
        ylabel=r"RMSE / $\sigma_{\rm CRLB}$",
    )
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(h_pad=0.2, rect=(0, 0, 1, 0.76))
    plotting.save(fig, "fig_rmse_vs_noise")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

"""Figure: EnhancedGalaxyNN residual (predicted - true) g1, g2 against true g, per noise level.

Reads ``src/data/summary/baseline_pred.npz`` and ``baseline.json``; each noise level's title
gives the median matched-filter S/N of the comparison galaxies (``compare.json``). Run on its own:
``python src/scripts/fig_baseline_residuals.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json, load_summary_npz


def binned(
    x: np.ndarray, y: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.digitize(x, edges) - 1
    ok = [(idx == k).sum() >= 5 for k in range(len(edges) - 1)]
    centres = 0.5 * (edges[1:] + edges[:-1])
    mean = np.array([y[idx == k].mean() if ok[k] else np.nan for k in range(len(edges) - 1)])
    err = np.array(
        [
            y[idx == k].std(ddof=1) / np.sqrt((idx == k).sum()) if ok[k] else np.nan
            for k in range(len(edges) - 1)
        ]
    )
    return centres, mean, err


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    summary = load_summary_json("baseline")
    preds = load_summary_npz("baseline_pred")
    snr = load_summary_json("compare")["snr_mf"]  # median matched-filter S/N, comparison galaxies
    tags = sorted(summary["noise"], key=lambda t: summary["noise"][t]["noise_sigma"])
    fig, axes = plt.subplots(
        2, len(tags), figsize=(plotting.PAGE_WIDTH_IN, 3.4), sharex=True, sharey="row"
    )
    edges = np.linspace(-0.6, 0.6, 13)
    for j, tag in enumerate(tags):
        pred, true = preds[f"pred_{tag}"], preds[f"true_{tag}"]
        sigma = summary["noise"][tag]["noise_sigma"]
        for k in range(2):
            ax = axes[k, j]
            res = pred[:, k] - true[:, k]
            ax.plot(true[:, k], res, ls="none", marker=".", ms=1.0, color="0.6", rasterized=True)
            c, m, e = binned(true[:, k], res, edges)
            ax.errorbar(c, m, e, color="#D55E00", marker="o", ms=2.5, ls="-", lw=0.8)
            ax.axhline(0, color="k", lw=0.5)
            if (
                k == 0
            ):  # the RMSEs above the panel: inside, the scatter of the noisiest level hid them
                rmse = [summary["noise"][tag]["shear"][f"g{i}"]["rmse"] for i in (1, 2)]
                ax.set_title(
                    rf"$\sigma_n=10^{{{np.log10(sigma):.0f}}}$, "
                    + rf"S/N$\approx${plotting.snr_label(snr[tag]['median'])}"
                    + "\n"
                    + rf"RMSE: $g_1$ {rmse[0]:.2g}, $g_2$ {rmse[1]:.2g}",
                    fontsize=7,
                )
            if j == 0:
                ax.set_ylabel(rf"$\hat g_{k + 1} - g_{k + 1}$")
            if k == 1:
                ax.set_xlabel(r"true $g_{1,2}$")
    lim = np.nanpercentile(
        np.abs(np.concatenate([preds[f"pred_{t}"] - preds[f"true_{t}"] for t in tags])), 99.5
    )
    for ax in axes.flat:
        ax.set_ylim(-1.2 * lim, 1.2 * lim)
        ax.set_xlim(-0.65, 0.65)
    fig.tight_layout(pad=0.3)
    plotting.save(fig, "fig_baseline_residuals")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

"""Figure: what EnhancedGalaxyNN sees.

Feature maps of one galaxy, and its saliency vs the ML weights.
Reads ``src/data/summary/diagnosis.npz`` and ``diagnosis.json``. Top: the stamp (lowest
noise) and three channels of each layer (the most variable ones after each ReLU), each
map scaled to its own range. Bottom: the saliency d g1_hat / d x of the networks trained
at the lowest and highest noise, the maximum-likelihood estimator's weight map
d g1_ML / d x (all six parameters free) and the signal template dI/dg1, each divided by
its largest absolute value; rho is the pixel correlation with the ML weight map. A saliency's
title gives the median matched-filter S/N of the comparison galaxies at its noise level
(``compare.json``).
Run on its own: ``python src/scripts/fig_cnn_vision.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json, load_summary_npz

KEEP = 0.6  # central fraction of each map shown


def centre(a: np.ndarray) -> np.ndarray:
    n = a.shape[-1]
    k = max(1, round(n * (1 - KEEP) / 2))
    return a[..., k : n - k, k : n - k]


def signed(ax, img: np.ndarray, title: str) -> None:
    m = np.abs(img).max()
    ax.imshow(centre(img) / (m if m > 0 else 1.0), origin="lower", cmap="PuOr_r", vmin=-1, vmax=1)
    ax.set_title(title, fontsize=7)


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec

    z = load_summary_npz("diagnosis")
    s = load_summary_json("diagnosis")
    snr = load_summary_json("compare")["snr_mf"]  # median matched-filter S/N, comparison galaxies
    layers = [k.removeprefix("vision_fmap_") for k in z if k.startswith("vision_fmap_")]
    grid = s["noise_grid"]
    n_ch = z["vision_fmap_conv1"].shape[0]
    fig = plt.figure(figsize=(plotting.PAGE_WIDTH_IN, 4.3))
    gs = GridSpec(n_ch + 2, len(layers) + 1, figure=fig, height_ratios=[1] * n_ch + [0.15, 1.6])
    ax = fig.add_subplot(gs[0, 0])
    ax.imshow(centre(z["vision_image"]), origin="lower", cmap="cividis")
    ax.set_title("stamp", fontsize=7)
    for j, layer in enumerate(layers):
        maps = z[f"vision_fmap_{layer}"]
        chans = z["vision_channels_relu1" if j < 3 else "vision_channels_relu2"]
        for c in range(n_ch):
            ax = fig.add_subplot(gs[c, j + 1])
            ax.imshow(centre(maps[c]), origin="lower", cmap="cividis")
            if c == 0:
                ax.set_title(layer, fontsize=7)
            ax.set_ylabel(f"ch {int(chans[c])}", fontsize=7)
    bottom = GridSpec(
        1, 4, figure=fig, top=0.32, bottom=0.02, wspace=0.15
    )  # room for 3-line titles
    corr = z["vision_corr_ml"]
    for b, k in enumerate((0, len(grid) - 1)):
        r = corr[k]
        signed(
            fig.add_subplot(bottom[0, b]),
            z["vision_saliency"][k],
            rf"saliency, $\sigma_n=10^{{{np.log10(grid[k]):.0f}}}$"
            + "\n"
            + rf"S/N$\approx${plotting.snr_label(snr[s['noise_tags'][k]]['median'])}"
            + "\n"
            + rf"$\rho={r[s['vision']['galaxy_index']]:.2f}$ (mean {r.mean():.2f})",
        )
    signed(
        fig.add_subplot(bottom[0, 2]),
        z["vision_ml_weight"],
        "ML weight map\n" + r"$\partial\hat g_{1,\rm ML}/\partial x$",
    )
    signed(
        fig.add_subplot(bottom[0, 3]),
        z["vision_template"],
        "template\n" + r"$\partial I/\partial g_1$",
    )
    for a in fig.axes:
        a.set_xticks([])
        a.set_yticks([])
        a.minorticks_off()
    fig.subplots_adjust(left=0.03, right=0.99, top=0.95, hspace=0.35, wspace=0.1)
    plotting.save(fig, "fig_cnn_vision")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

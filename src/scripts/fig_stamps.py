"""Figure: two test galaxies across the noise grid, with the PSF.

Reads ``src/data/summary/stamps.npz`` (written by the Snakefile's ``summary``
rule from the active profile's test set). Run on its own:
``python src/scripts/fig_stamps.py`` -> ``src/tex/figures/fig_stamps.pdf``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_npz


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    s = load_summary_npz("stamps")
    grid = s["noise_grid"]
    n_gal, n_noise = s["clean"].shape[0], len(grid)
    size = s["clean"].shape[-1]
    half = size * float(s["pixel_scale"]) / 2
    extent = (-half, half, -half, half)
    fig, axes = plt.subplots(
        n_gal, n_noise + 1, figsize=(plotting.PAGE_WIDTH_IN, 1.45 * n_gal + 0.2)
    )
    for i in range(n_gal):
        for j, sigma in enumerate(grid):
            img = s["clean"][i] + sigma * s["noise"][i]
            vmax = float(s["clean"][i].max())
            ax = axes[i, j]
            ax.imshow(
                img, origin="lower", cmap="cividis", vmin=-0.05 * vmax, vmax=vmax, extent=extent
            )
            snr = float(s["label_flux"][i]) / (size * sigma)
            if i == 0:
                ax.set_title(rf"$\sigma_n = 10^{{{np.log10(sigma):.0f}}}$", fontsize=7)
            # white on a dark box: legible over the bright noise of the large galaxy
            ax.text(
                0.04,
                0.04,
                f"S/N$\\approx${snr:.0f}",
                color="w",
                fontsize=7,
                transform=ax.transAxes,
                bbox=dict(boxstyle="round,pad=0.2", fc="black", ec="none", alpha=0.75),
            )
            if i < n_gal - 1 and j < n_noise:
                ax.tick_params(labelbottom=False)  # arcsec scale read off the bottom row
            if j > 0:
                ax.tick_params(labelleft=False)  # ... and off the first column
        g1, g2, r = (float(s[f"label_{k}"][i]) for k in ("g1", "g2", "size_arcsec"))
        axes[i, 0].set_ylabel(f"$g=({g1:+.2f},{g2:+.2f})$\n$\\sigma_g={r:.2f}''$", fontsize=7)
    psf_ax = axes[0, -1]
    psf_ax.imshow(s["psf"], origin="lower", cmap="cividis", extent=extent)
    psf_ax.set_title("PSF", fontsize=7)
    psf_ax.tick_params(labelleft=False)
    axes[1, -1].axis("off")
    axes[1, -1].text(
        0.05,
        0.5,
        "arcsec axes;\ncolour scale\nclean peak",
        fontsize=7,
        va="center",
        transform=axes[1, -1].transAxes,
    )
    for ax in axes.flat:
        ax.tick_params(labelsize=7, length=2)
        ax.minorticks_off()
    fig.tight_layout(pad=0.3, w_pad=0.2, h_pad=0.3)
    plotting.save(fig, "fig_stamps")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

"""Figure: shear bias against matched-filter S/N: m, c, PSF leakage and the test's own precision.

Reads ``src/data/summary/bias.json`` (the shear test at every noise level, round and anisotropic
PSF). Panels: m1, m2 (top), c1, c2 (middle; round PSF), the PSF leakage alpha = c1 / g_psf of the
anisotropic-PSF test and the achieved sigma(m) against its target (bottom). m and c are on a
symmetric-log axis, linear within the LSST requirement (dark band; light band: Euclid's), so
values near zero and the networks' shrinkage at low S/N are both readable. Horizontal axis: the
median matched-filter S/N of the shear-test galaxies. Run on its own:
``python src/scripts/fig_bias.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json

#: Half-range of the m and c axes; a value beyond is off the axes.
Y_MAX = {"m": 1.0, "c": 0.1}
#: Range of the alpha axis (KSB's alpha at the lowest S/N, with errors of order one, falls outside).
ALPHA_RANGE = (-0.5, 1.5)


def _series(ax, snr, y, err, style, label=None):
    ax.errorbar(
        snr,
        y,
        err,
        color=style["color"],
        ls=style["linestyle"],
        marker=style["marker"],
        lw=0.8,
        ms=3,
        capsize=1.5,
        label=label,
    )


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    s = load_summary_json("bias")
    req = s["requirements"]
    fig, axes = plt.subplots(3, 2, figsize=(plotting.COLUMN_WIDTH_IN, 5.2), sharex=True)
    for m, per in s["bias"].items():
        style = plotting.method_style(m)
        tags = sorted(per, key=lambda t: per[t]["median_snr_mf"])
        snr = np.array([per[t]["median_snr_mf"] for t in tags])
        for ax, key in zip(axes[:2].ravel(), ("m1", "m2", "c1", "c2")):
            _series(
                ax,
                snr,
                [per[t][key] for t in tags],
                [per[t][f"{key}_err"] for t in tags],
                style,
                plotting.method_label(m) if key == "m1" else None,
            )
        psf = s["bias_psf"][m]
        _series(
            axes[2, 0],
            snr,
            [psf[t]["alpha"] for t in tags],
            [psf[t]["alpha_err"] for t in tags],
            style,
        )
        axes[2, 1].plot(
            snr,
            [per[t]["precision"]["sigma_m"] for t in tags],
            color=style["color"],
            ls=style["linestyle"],
            marker=style["marker"],
            lw=0.8,
            ms=3,
        )
    for ax, key in zip(axes[:2].ravel(), ("m1", "m2", "c1", "c2")):
        lsst, euclid = req[key[0]], req[f"euclid_{key[0]}"]
        ax.axhspan(-euclid, euclid, color="0.9", lw=0, zorder=0)
        ax.axhspan(-lsst, lsst, color="0.75", lw=0, zorder=0)
        ax.axhline(0, color="0.4", lw=0.5)
        ax.set_yscale("symlog", linthresh=lsst, linscale=0.6)
        ax.set_ylim(-Y_MAX[key[0]], Y_MAX[key[0]])  # beyond: off the axes (said in the caption)
        ax.set_ylabel(f"${key[0]}_{key[1]}$")
    axes[2, 0].axhline(0, color="0.4", lw=0.5)
    axes[2, 0].set_ylim(*ALPHA_RANGE)
    axes[2, 0].set_ylabel(r"PSF leakage $\alpha$")
    ax = axes[2, 1]
    first = next(iter(s["bias"].values()))
    tags = sorted(first, key=lambda t: first[t]["median_snr_mf"])
    ax.step(
        [first[t]["median_snr_mf"] for t in tags],
        [first[t]["precision"]["target"] for t in tags],
        where="mid",
        color="k",
        lw=0.8,
        ls="--",
        label="target",
    )
    ax.set_yscale("log")
    ax.set_ylabel(r"achieved $\sigma(m)$")
    ax.legend(loc="upper right", frameon=False)
    for ax in axes.ravel():
        ax.set_xscale("log")
    for ax in axes[2]:
        ax.set_xlabel(r"median S/N$_{\rm mf}$")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=3, loc="upper center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(w_pad=0.3, h_pad=0.3, rect=(0, 0, 1, 0.88))
    plotting.save(fig, "fig_bias")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

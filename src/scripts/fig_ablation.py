"""Figure: RMSE/CRLB of every ablation variant, ladder above and removals below, two noise levels.

Reads ``src/data/summary/ablation.json`` (``python -m shearbridge summarize ablation``).
One row per variant: the ladder adds one ingredient per row to the baseline architecture
(top block, ending at the final model), the removals take one out of the final model
(middle block); the bottom block is the baseline and ShapeNet at the full training
budget (the variants use a reduced budget: ``shearbridge.config.ablation.ablation_epochs``,
``ablation_objects``). Markers: filled circles the lowest noise level, open squares the
second (1e-3), each with the median matched-filter S/N of the comparison galaxies
(``compare.json``); bars are bootstrap errors. Log axis.
Run on its own: ``python src/scripts/fig_ablation.py``.
"""

import numpy as np

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json

GROUPS = (
    ("ladder", "ladder: add one ingredient"),
    ("removal", "final model: remove one"),
    ("reference", "full training budget"),
)
OFFSET = 0.17  # vertical offset of the two noise levels within a row


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt

    s = load_summary_json("ablation")
    snr = load_summary_json("compare")["snr_mf"]  # median matched-filter S/N, comparison galaxies
    rows = [r for g, _ in GROUPS for r in s["rows"] if r["group"] == g]
    # positions top to bottom (row units): each group opens with a row of its own holding its
    # name (no data there, so the name covers none), groups apart by a gap and a separator
    pos, first = [], {}
    p = 0.0
    for g, _ in GROUPS:
        members = [r for r in rows if r["group"] == g]
        if not members:
            continue
        p += 1.4 if pos else 0.0
        first[g] = p  # the name's row
        for _ in members:
            p += 1.0
            pos.append(p)
    y = -np.array(pos)
    height = 0.9 + 0.17 * (len(rows) + len(first))
    fig, ax = plt.subplots(figsize=(plotting.COLUMN_WIDTH_IN, height))
    marker_styles = [
        dict(marker="o", color=plotting.COLORS[0], mfc=plotting.COLORS[0]),
        dict(marker="s", color=plotting.COLORS[4], mfc="white"),
    ]
    for k, (tag, sigma) in enumerate(zip(s["noise_tags"], s["noise_grid"])):
        ratio = np.array([r["per_noise"][tag]["ratio"] for r in rows])
        err = np.array([r["per_noise"][tag]["ratio_err"] for r in rows])
        lo = np.minimum(err, 0.95 * ratio)  # keep the log axis finite
        st = marker_styles[k % len(marker_styles)]
        ax.errorbar(
            ratio,
            y + (OFFSET if k == 0 else -OFFSET),
            xerr=[lo, err],
            ls="none",
            ms=3.5,
            elinewidth=0.8,
            capsize=1.5,
            mec=st["color"],
            ecolor=st["color"],
            marker=st["marker"],
            mfc=st["mfc"],
            label=rf"$\sigma_n=10^{{{np.log10(sigma):.0f}}}$ "
            rf"(S/N$\approx${plotting.snr_label(snr[tag]['median'])})",
        )
    ax.set_xscale("log")
    lo_x, hi_x = ax.get_xlim()
    ax.set_xlim(lo_x / 1.2, hi_x * 1.2)
    ax.set_yticks(y, [r["label"] for r in rows])
    ax.tick_params(axis="y", which="both", length=0)
    ax.minorticks_on()
    ax.yaxis.set_minor_locator(plt.NullLocator())
    ax.set_ylim(y.min() - 0.6, -min(first.values()) + 0.6)
    for k, (g, p0) in enumerate(first.items()):
        if k:
            ax.axhline(-(p0 - 0.7), color="0.5", lw=0.5, zorder=0)
        ax.text(
            0.02,
            -p0,
            dict(GROUPS)[g],
            transform=ax.get_yaxis_transform(),
            ha="left",
            va="center",
            fontsize=7,
            style="italic",
            color="0.3",
        )
    ax.grid(axis="x", which="major", color="0.88", lw=0.5, zorder=0)
    ax.set_xlabel(
        "RMSE($g$) / RMS Cramér–Rao bound", loc="right"
    )  # wider than the axes: flush right
    ax.legend(
        loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=1, borderaxespad=0.1
    )  # with S/N: one a row
    fig.tight_layout(pad=0.3)
    plotting.save(fig, "fig_ablation")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

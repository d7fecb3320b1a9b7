"""Figure: the training ladder, PSFNet's validation error at the end of complete runs of doubling
length, one line per seed.

Reads ``src/data/summary/converge.json`` (:func:`shearbridge.steps.converge.summarize_ladder`):
per seed, the rungs of this code in the store, each rung's mean validation ``(e/sigma_CRLB)^2``
with its error; the in-hour budget (the ladder's first rung) is marked. A seed with no rung is not
drawn; with none at all the panel says that the ladder has not been run for this code.
Run on its own: ``python src/scripts/fig_converge.py``.
"""

from shearbridge.paper import plotting
from shearbridge.summaries import load_summary_json


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    s = load_summary_json("converge")
    fig, ax = plt.subplots(figsize=(plotting.COLUMN_WIDTH_IN, 2.4))
    drawn = False
    for i, (seed, e) in enumerate(s["seeds"].items()):
        if not e["rungs"]:
            continue
        ax.errorbar(
            e["rungs"],
            e["points"],
            e["point_errors"],
            marker="o",
            ms=3,
            color=f"C{i}",
            label=f"seed {seed}",
        )
        drawn = True
    ax.axvline(s["steps"][0], color="0.5", ls=":", lw=1, label="in-hour budget")
    if not drawn:
        ax.text(0.5, 0.5, "no rung of this code in the store", ha="center", transform=ax.transAxes)
    ax.set(
        xlabel="training steps (complete runs)",
        ylabel=r"validation $\langle(e/\sigma_{\rm CRLB})^2\rangle$",
        xscale="log",
        yscale="log",
    )
    plain = FuncFormatter(lambda y, _: f"{y:,g}")
    ax.set_xticks(s["steps"])
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(NullFormatter())
    lo, hi = ax.get_ylim()
    ax.set_yticks([t for t in (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500) if lo <= t <= hi])
    ax.legend(frameon=False)
    fig.tight_layout()
    plotting.save(fig, "fig_converge")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

"""Figure: the population network's learning curve, from complete runs of different lengths.

Reads ``src/data/summary/population.json`` (its ``learning`` block,
:func:`shearbridge.summaries.population.learning_curve`). Left: the validation RMSE/CRLB during
training of every run (thin lines: the seeds' full runs and the first seed's shorter runs, each on
its own cosine schedule) and, joined by the thick line, where each complete run ends: the curve
without the cosine tail that flattens every single run at its end. Right: the complete runs'
RMSE/CRLB on the in-distribution test cells (geometric mean over the cells), one line per noise
level. Run on its own: ``python src/scripts/fig_population_learning.py``.
"""

from shearbridge.paper import plotting
from shearbridge.paper.outputs import fmt_noise
from shearbridge.stats.cells import SEED_PREFIX
from shearbridge.summaries import load_summary_json


def main() -> None:
    plotting.use_style()
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    s = load_summary_json("population")
    learn = s["learning"]
    if not learn:
        raise SystemExit(
            "population.json has no learning curve: rerun "
            "`python -m shearbridge population evaluate`"
        )
    first = learn["runs"][-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(plotting.PAGE_WIDTH_IN, 2.6))
    for name, c in sorted(learn["curves"].items()):
        seed = name.startswith(SEED_PREFIX)
        left.plot(
            c["step"],
            c["val_ratio"],
            color="0.3" if name == first else "0.65" if seed else "C0",
            lw=1.0 if seed else 0.8,
            ls="-" if seed else "--",
        )
    left.plot(
        learn["steps"],
        learn["val_ratio"],
        color="k",
        lw=2,
        marker="o",
        ms=4,
        label="end of a complete run",
    )
    left.plot([], [], color="0.3", lw=1.0, label="during a full run (seeds)")
    left.plot([], [], color="C0", lw=0.8, ls="--", label="during a shorter run")
    left.set(xlabel="training steps", ylabel=r"validation RMSE / $\sigma_{\rm CRLB}$", yscale="log")
    left.legend(frameon=False)
    for i, sigma in enumerate(s["cell_noise"]):
        right.errorbar(
            learn["steps"],
            learn["cell_ratio"][i],
            learn["cell_ratio_err"][i],
            marker="o",
            ms=3,
            color=f"C{i}",
            label=r"$\sigma_n$ = " + fmt_noise(sigma),
        )
    right.axhline(1, color="0.4", ls="--", lw=1)
    right.set(
        xlabel="training steps (complete runs)",
        ylabel=r"test RMSE / $\sigma_{\rm CRLB}$ (in distribution)",
        yscale="log",
    )
    right.legend(frameon=False)
    plain = FuncFormatter(lambda y, _: f"{y:g}")  # 2, 3, 10 rather than 2x10^0
    for ax in (left, right):
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
    fig.tight_layout()
    plotting.save(fig, "fig_population_learning")


if __name__ == "__main__":
    from shearbridge.paper.script import run_script

    run_script(main)

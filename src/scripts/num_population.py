"""Numbers: the population study (one PSF- and noise-aware network over galaxy and PSF families).

Reads ``src/data/summary/population.json``; writes the cell table ``pop_table``, the shear-test
table ``pop_bias_table``, and the ranges the text quotes (each "lowest to highest" over a group of
cells, each end with its error): ``pop_<method>_<group>_<tag>`` (RMSE/CRLB),
``pop_pull_<group>_<tag>``, ``pop_gain_nongauss_<tag>``, ``pop_m_<method>_<group>_<tag>`` (shear
tests), ``pop_mcal_{m,R,wild}_<psf family>`` (metacalibration: m, median response, per cent of wild
responses), ``pop_abl_<name>_<tag>`` (ablations and the shorter complete runs ``steps_<per cent>``
over the network), the learning curve of complete runs (``pop_learn_steps``: the shorter runs'
steps; ``pop_learn_val``: every run's final validation RMSE/CRLB; ``pop_learn_cells_<tag>``: their
in-distribution RMSE/CRLB; ``pop_learn_last_<tag>``: the second-longest run's over the longest's),
the targets met (``pop_target_met``, ``pop_pull_met``) and the plan (``pop_n_cell`` ...). Groups:
``in`` (in distribution), ``galaxy``/``psf`` (the held-out galaxy / PSF family), ``both``.
Run on its own: ``python src/scripts/num_population.py``.
"""

import math

import numpy as np

from shearbridge.config import Profile, noise_tag
from shearbridge.config.population import population_plan
from shearbridge.paper.outputs import (
    fmt_int,
    fmt_list,
    fmt_noise,
    fmt_num,
    fmt_pm,
    fmt_range,
    write_variable,
)
from shearbridge.paper.tables import fmt_snr, population_bias_table, population_table
from shearbridge.summaries import load_summary_json
from shearbridge.summaries.population import (
    FAMILY_LABELS,
    GROUPS,
    MIN_SNR_TARGET,
    NETWORK,
    cell_methods,
    label,
    met_targets,
    shear_methods,
)


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes, from the profile's population plan and the registry's
    population methods: per cell level and group the ranges, per shear level and group the m
    ranges, the learning curve when the plan has shorter runs, metacal per PSF family when the
    plan has it."""
    plan = population_plan(profile)
    cell_tags = [noise_tag(x) for x in plan.cell_noise]
    shear_tags = [noise_tag(x) for x in plan.shear_noise]
    names = [
        "pop_table",
        "pop_bias_table",
        "pop_target_met",
        "pop_pull_met",
        "pop_min_snr_target",
        "pop_train_min",
        "pop_n_seeds",
        "pop_noise_levels",
        "pop_shear_low",
        "pop_shear_high",
        "pop_held_galaxy",
        "pop_held_psf",
        "pop_network",
        "pop_learn_steps",
        "pop_learn_val",
    ]
    names += [f"pop_{k}" for k in ("n_cell", "n_shear", "n_train", "steps", "batch_size")]
    names += [f"pop_{k}_{t}" for k in ("snr", "gain_nongauss") for t in cell_tags]
    names += [f"pop_{m}_{g}_{t}" for m in cell_methods() for g in GROUPS for t in cell_tags]
    names += [f"pop_pull_{g}_{t}" for g in GROUPS for t in cell_tags]
    names += [f"pop_abl_{a}_{t}" for a in plan.ablation_names() for t in cell_tags]
    if plan.budgets:  # shorter complete runs: the learning curve
        names += [f"pop_learn_{k}_{t}" for k in ("cells", "last") for t in cell_tags]
    names += [f"pop_m_{m}_{g}_{t}" for m in shear_methods() for g in GROUPS for t in shear_tags]
    if plan.metacal_noise:
        families = plan.population.psf_families
        names += [f"pop_mcal_{k}_{p}" for k in ("m", "R", "wild") for p in families]
    return names


def main() -> None:
    from shearbridge.paper.plotting import method_label  # matplotlib: loaded to run, not to declare

    s = load_summary_json("population")
    cells, shear = s["cells"], s["shear"]
    cell_ms, shear_ms = cell_methods(), shear_methods()
    tags = {float(x): noise_tag(x) for x in s["cell_noise"] + s["shear_noise"]}
    write_variable(
        "pop_table", population_table(cells, cell_ms, label, FAMILY_LABELS, s["n_cell"], NETWORK)
    )
    high = max(s["shear_noise"])
    low = min(s["shear_noise"])
    write_variable(
        "pop_bias_table",
        population_bias_table(
            shear,
            shear_ms,
            label,
            FAMILY_LABELS,
            low,
            s["metacal_noise"][0] if s["metacal_noise"] else None,
            NETWORK,
        ),
    )
    for sigma in s["cell_noise"]:
        at = [c for c in cells if math.isclose(c["noise_sigma"], sigma)]
        tag = tags[sigma]
        snr = [c["snr_median"] for c in at]
        write_variable(f"pop_snr_{tag}", f"{fmt_snr(min(snr))} to {fmt_snr(max(snr))}")
        for group in GROUPS:
            sub = [c for c in at if c["group"] == group]
            for m in cell_ms:
                vals = [
                    (c["methods"][m]["ratio"], c["methods"][m]["ratio_err"])
                    for c in sub
                    if "ratio" in c["methods"].get(m, {})
                ]
                write_variable(f"pop_{m}_{group}_{tag}", fmt_range(vals))
            write_variable(
                f"pop_pull_{group}_{tag}",
                fmt_range(
                    [
                        (c["methods"][NETWORK]["pull"], c["methods"][NETWORK]["pull_err"])
                        for c in sub
                    ]
                ),
            )
        write_variable(
            f"pop_gain_nongauss_{tag}",
            fmt_range(
                [(c["gain"]["ratio"], c["gain"]["ratio_err"]) for c in at if c["galaxy"] != "gauss"]
            ),
        )
        for abl in s["ablation_seconds"]:
            rel = [
                c["methods"][f"abl_{abl}"]["ratio"] / c["methods"][NETWORK]["ratio"]
                for c in at
                if c["group"] == "in"
            ]
            write_variable(f"pop_abl_{abl}_{tag}", fmt_range([(x, None) for x in rel]))
    for sigma in s["shear_noise"]:
        at = [r for r in shear if math.isclose(r["noise_sigma"], sigma)]
        for group in GROUPS:
            sub = [r for r in at if r["group"] == group]
            for m in shear_ms:
                vals = [(r["bias"][m]["m"], r["bias"][m]["m_err"]) for r in sub if r["bias"].get(m)]
                write_variable(f"pop_m_{m}_{group}_{tags[sigma]}", fmt_range(vals))
    mcal = [r for r in shear if "metacal" in r]
    for psf in sorted({r["psf"] for r in mcal}):  # metacal works per PSF family, not per group
        sub = [r["metacal"][NETWORK] for r in mcal if r["psf"] == psf]
        write_variable(f"pop_mcal_m_{psf}", fmt_range([(x["m"], x["m_err"]) for x in sub]))
        write_variable(f"pop_mcal_R_{psf}", fmt_range([(x["median_response"], None) for x in sub]))
        write_variable(
            f"pop_mcal_wild_{psf}",
            fmt_range([(100 * x["wild_response_fraction"], None) for x in sub]),
        )
    met = met_targets(cells)
    write_variable("pop_target_met", f"{met['ratio'][0]} of the {met['ratio'][1]}")
    write_variable("pop_pull_met", f"{met['pull'][0]} of the {met['pull'][1]}")
    write_variable("pop_min_snr_target", fmt_int(MIN_SNR_TARGET))
    secs = np.array(list(s["training_seconds"].values()))
    write_variable(
        "pop_train_min", fmt_pm(secs.mean() / 60, secs.std(ddof=1) / 60 if len(secs) > 1 else 0.0)
    )
    for key in ("n_cell", "n_shear", "n_train", "steps", "batch_size"):
        write_variable(f"pop_{key}", fmt_int(s[key]))
    write_variable("pop_n_seeds", str(len(s["seeds"])))
    learn = s["learning"]
    write_variable("pop_learn_steps", fmt_list([fmt_int(n) for n in learn["steps"][:-1]]))
    write_variable("pop_learn_val", fmt_list([f"${fmt_num(x)}$" for x in learn["val_ratio"]]))
    for i, sigma in enumerate(
        s["cell_noise"] if len(learn["runs"]) > 1 else []
    ):  # with shorter runs only
        r, e = learn["cell_ratio"][i], learn["cell_ratio_err"][i]
        write_variable(
            f"pop_learn_cells_{tags[sigma]}", fmt_list([fmt_pm(a, b) for a, b in zip(r, e)])
        )
        write_variable(
            f"pop_learn_last_{tags[sigma]}",
            fmt_pm(r[-2] / r[-1], r[-2] / r[-1] * math.hypot(e[-2] / r[-2], e[-1] / r[-1])),
        )
    write_variable("pop_noise_levels", fmt_list([fmt_noise(x) for x in s["cell_noise"]]))
    write_variable("pop_shear_low", fmt_noise(low))
    write_variable("pop_shear_high", fmt_noise(high))
    write_variable("pop_held_galaxy", FAMILY_LABELS[s["held_out"]["galaxy"]])
    write_variable("pop_held_psf", FAMILY_LABELS[s["held_out"]["psf"]])
    write_variable("pop_network", method_label(NETWORK))


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)

"""Numbers: PSFNet trained to convergence (the training ladder this build reads).

Reads ``src/data/summary/converge.json`` (:func:`shearbridge.steps.converge.summarize_ladder`);
writes the table ``converge_table``, the ladder's state ``converge_state`` (which rungs of this
code the store holds), its planned cost ``converge_core_hours``, its rungs ``converge_steps`` and
seeds ``converge_seeds``, the validation galaxies ``converge_n_val``, ``converge_verdict`` (per
seed: flat at which doubling, or still falling, with the last ratio) and the rule's constants
``converge_tol`` (the improvement a flat doubling must resolve) and ``converge_z`` (its errors).
Run on its own: ``python src/scripts/num_converge.py``.
"""

from shearbridge.config import Profile
from shearbridge.paper.outputs import fmt_int, fmt_list, fmt_pm, write_variable
from shearbridge.paper.ladder import converge_table
from shearbridge.stats.converge import TOL_FLAT, Z_FLAT
from shearbridge.summaries import load_summary_json


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes (the same for every profile)."""
    return [
        "converge_table",
        "converge_state",
        "converge_core_hours",
        "converge_steps",
        "converge_seeds",
        "converge_n_val",
        "converge_verdict",
        "converge_tol",
        "converge_z",
    ]


def _verdict(seed: str, e: dict) -> str:
    """One seed's reading of its ladder, in words."""
    if "ratios" not in e:
        return f"seed {seed}: fewer than two rungs"
    if e["converged"]:
        k = e["steps"].index(e["flat_at"])
        ratio = fmt_pm(e["ratios"][k], e["ratio_errors"][k])
        lo, hi = e["flat_at"], 2 * e["flat_at"]
        return f"seed {seed}: flat from {lo:,} to {hi:,} steps (ratio {ratio})"
    return (
        f"seed {seed}: still falling at {e['steps'][-1]:,} steps "
        f"(last ratio {fmt_pm(e['ratios'][-1], e['ratio_errors'][-1])})"
    )


def main() -> None:
    s = load_summary_json("converge")
    write_variable("converge_table", converge_table(s["seeds"]))
    read, planned = s["rungs_read"], s["rungs_planned"]
    if read == 0:
        state = "not run for this code: the store holds no rung whose hash matches it"
    elif read < planned:
        state = f"{read} of its {planned} rungs run for this code"
    else:
        state = f"complete for this code ({planned} rungs)"
    if s["stale"]:
        state += f" ({len(s['stale'])} rungs made by other code ignored)"
    write_variable("converge_state", state)
    write_variable("converge_core_hours", f"{s['core_hours_planned']:.0f}")
    write_variable("converge_steps", fmt_list([f"{n:,}" for n in s["steps"]]))
    write_variable("converge_seeds", str(len(s["seeds"])))
    write_variable("converge_n_val", fmt_int(s["n_val"]))
    write_variable("converge_tol", f"{100 * TOL_FLAT:g}\\,\\%")
    write_variable("converge_z", f"{Z_FLAT:g}")
    verdicts = [_verdict(seed, e) for seed, e in s["seeds"].items() if e["rungs"]]
    write_variable("converge_verdict", "; ".join(verdicts) if verdicts else "no rung to read")


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)

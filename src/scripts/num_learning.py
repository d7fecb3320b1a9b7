"""Numbers: learning curves of the headline networks (RMSE/CRLB against training compute).

Reads ``src/data/summary/learning.json``; writes, per network and noise level,
the RMSE/CRLB after the first and the last epoch (``learn_first_*``,
``learn_final_*``), their ratio (``learn_gain_*``: how much the last epochs
still bought), the ratio at the largest compute budget both networks reached
(``learn_matched_*``) and that budget in FLOPs (``learn_matched_flops``).
Run on its own: ``python src/scripts/num_learning.py``.
"""

from shearbridge import study
from shearbridge.config import Profile
from shearbridge.paper.outputs import fmt_pm, fmt_sci, write_variable
from shearbridge.stats.resample import quotient
from shearbridge.summaries import load_summary_json


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes: every network of the learning study at its levels."""
    nets, tags = study.names("learning"), study.study_tags(profile, "learning")
    return [
        f"learn_{what}_{e}_{t}"
        for what in ("first", "final", "matched", "gain")
        for e in nets
        for t in tags
    ] + ["learn_matched_flops"]


def main() -> None:
    s = load_summary_json("learning")
    budgets = []
    for tag, curves in s["curves"].items():
        matched = s["matched"][tag]
        budgets.append(matched["train_flops"])
        for name, c in curves.items():
            first, last = c["points"][0], c["points"][-1]
            write_variable(f"learn_first_{name}_{tag}", fmt_pm(first["ratio"], first["ratio_err"]))
            write_variable(f"learn_final_{name}_{tag}", fmt_pm(last["ratio"], last["ratio_err"]))
            # the last half of training: ratio at the middle snapshot over the final ratio
            mid = c["points"][(len(c["points"]) - 1) // 2]
            gain = quotient(mid["ratio"], mid["ratio_err"], last["ratio"], last["ratio_err"])
            write_variable(f"learn_gain_{name}_{tag}", fmt_pm(*gain))
            write_variable(
                f"learn_matched_{name}_{tag}",
                fmt_pm(matched["ratio"][name], matched["ratio_err"][name]),
            )
    write_variable("learn_matched_flops", fmt_sci(min(budgets)))


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)

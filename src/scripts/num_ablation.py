"""Numbers: what the ablation ladder buys (total factor, the most useful step), and its budget
(epochs, training objects, and the fraction of the full networks' sample-steps in words).

Reads ``src/data/summary/ablation.json`` (``python -m shearbridge summarize ablation``).
Run on its own: ``python src/scripts/num_ablation.py``.
"""

from shearbridge import study
from shearbridge.config import Profile
from shearbridge.paper.outputs import fmt_int, fmt_pm, write_variable
from shearbridge.summaries import load_summary_json

WORDS = {
    1: "all",
    2: "half",
    3: "a third",
    4: "a quarter",
    5: "a fifth",
    6: "a sixth",
    7: "a seventh",
    8: "an eighth",
    9: "a ninth",
    10: "a tenth",
    20: "a twentieth",
}


def fraction_words(part: int, full: int) -> str:
    """``part / full`` as running text: ``'a tenth'`` where it is one over a small integer."""
    if part > 0 and full % part == 0 and full // part in WORDS:
        return WORDS[full // part]
    return f"${part}/{full}$"


def step_name(label: str) -> str:
    """A ladder label as running text:
    ``'+ residual read-out (final)'`` -> ``'residual read-out'``."""
    return label.removeprefix("+ ").removesuffix(" (final)").strip()


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes: the ladder's gain and best step at the ablation study's
    levels, its budget."""
    tags = study.study_tags(profile, "ablation")
    names = [f"ablation_{what}_{t}" for what in ("gain", "best_step", "best_factor") for t in tags]
    return names + ["ablation_epochs", "ablation_fraction", "ablation_objects"]


def main() -> None:
    s = load_summary_json("ablation")
    for tag in s["noise_tags"]:
        total = s["total"][tag]
        write_variable(f"ablation_gain_{tag}", fmt_pm(total["factor"], total["factor_err"]))
        best = max(s["steps"][tag], key=lambda st: st["factor"])
        write_variable(f"ablation_best_step_{tag}", step_name(best["label"]))
        write_variable(f"ablation_best_factor_{tag}", fmt_pm(best["factor"], best["factor_err"]))
    write_variable("ablation_epochs", f"${s['epochs_ablation']}$")
    write_variable("ablation_objects", fmt_int(s["objects_ablation"]))
    write_variable(
        "ablation_fraction", fraction_words(s["sample_steps_ablation"], s["sample_steps_full"])
    )


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)

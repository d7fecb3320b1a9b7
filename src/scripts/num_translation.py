"""Numbers: NumPy -> JAX/Flax translation check (cases, passes, worst differences).

Reads ``src/data/summary/translation.json``. Run on its own:
``python src/scripts/num_translation.py``.
"""

from shearbridge.config import Profile
from shearbridge.paper.outputs import fmt_num, fmt_sci, write_variable
from shearbridge.summaries import load_summary_json

U = 2.0**-24


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes (the same for every profile)."""
    return [
        f"translation_{n}"
        for n in (
            "n_cases",
            "n_passed",
            "conv_maxabs",
            "conv_maxrel_u",
            "conv_bound_u",
            "pool_maxabs",
            "maxpool_maxabs",
        )
    ]


def main() -> None:
    rows = load_summary_json("translation")["rows"]
    write_variable("translation_n_cases", f"${len(rows)}$")
    write_variable("translation_n_passed", f"${sum(r['passed'] for r in rows)}$")
    conv = [r for r in rows if "onv" in r["op"]]
    write_variable("translation_conv_maxabs", fmt_sci(max(r["max_abs_diff"] for r in conv)))
    big = [r for r in conv if r["n_terms"] > 16]
    write_variable(
        "translation_conv_maxrel_u", f"${fmt_num(max(r['max_rel_diff'] for r in big) / U, 2)}$"
    )
    write_variable(
        "translation_conv_bound_u", f"${fmt_num(min(r['tolerance'] for r in big) / U, 2)}$"
    )
    pool = [r for r in rows if "avg_pool" in r["op"]]
    write_variable("translation_pool_maxabs", fmt_sci(max(r["max_abs_diff"] for r in pool)))
    mx = [r for r in rows if "max_pool" in r["op"]]
    write_variable(
        "translation_maxpool_maxabs",
        fmt_sci(max(r["max_abs_diff"] for r in mx))
        if any(r["max_abs_diff"] for r in mx)
        else "$0$",
    )


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)

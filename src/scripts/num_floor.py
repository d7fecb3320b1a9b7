"""Numbers: the low-noise floor (what sets it) and the validation choice of the weight fractions.

Reads ``src/data/summary/floor.json`` (``python -m shearbridge summarize floor``).
Writes, at the lowest noise level:

* ``floor_<variant>_<all|no5>``: RMSE/CRLB (bootstrap error) of the moments-only estimator
  under each numerics variant (``reference``, ``float64``, ``niter16``, ``nopixel``), over
  all comparison galaxies and without the 5% largest; ``floor_delta_<variant>_<all|no5>``
  its change against the reference (paired bootstrap); ``floor_median_<variant>`` the median
  ratio (all galaxies);
* ``floor_clean_ratio`` (``floor_clean_ratio_no5``): RMSE/CRLB of the reference on the
  noise-free stamps with the same read-out; ``floor_noisepart_ratio``: of the noisy minus
  noise-free estimate;
* ``floor_smallbin_<method>``: RMSE/CRLB in the smallest-size bin; ``floor_lowflux_<method>``:
  for galaxies with less than 1e-9 of their flux outside the stamp;
* ``floor_noise``, ``floor_n``, ``floor_nfit``, ``floor_smallbin_hi`` (upper size edge of the
  smallest bin, px), ``floor_lowflux_n``;
* ``tune_choice``, ``tune_current``, ``tune_table`` (validation RMSE of every candidate at every
  level, and the score), ``tune_nval``.

Refuses (SystemExit) when the configured :data:`shearbridge.models.moments.WEIGHT_FRACTIONS`
are not the validation choice. Run on its own: ``python src/scripts/num_floor.py``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from shearbridge import study
from shearbridge.config import Profile
from shearbridge.diagnosis.floor_plan import FLOOR_METHODS, VARIANT_KEYS
from shearbridge.paper.outputs import fmt_int, fmt_noise, fmt_num, fmt_pm, write_variable
from shearbridge.paper.tables import fit_width
from shearbridge.summaries import load_summary_json


def fmt_fractions(c: Sequence[float]) -> str:
    return "$(" + ", ".join(f"{float(f):g}" if float(f) != 1 else "1.0" for f in c) + ")$"


def check_agreement(tuning: Mapping[str, Any], configured: Sequence[float] | None = None) -> None:
    """SystemExit unless the tuning step's choice is the configured weight fractions (as recorded
    by the step, and, when given, as configured now)."""
    choice = [float(f) for f in tuning["choice"]]
    recorded = [float(f) for f in tuning["current"]]
    problems = []
    if not tuning.get("agrees", False) or choice != recorded:
        problems.append(
            f"the tuning step chose {tuple(choice)} on the validation split, but "
            f"WEIGHT_FRACTIONS was {tuple(recorded)} when it ran"
        )
    if configured is not None and [float(f) for f in configured] != choice:
        problems.append(
            f"shearbridge.models.moments.WEIGHT_FRACTIONS is now {tuple(configured)}, "
            f"the validation choice {tuple(choice)}"
        )
    if problems:
        raise SystemExit(
            "num_floor.py: the configured weight fractions are not the validation choice: "
            + "; ".join(problems)
            + ". Set WEIGHT_FRACTIONS in src/shearbridge/models/moments.py "
            "to the choice (then retrain) or rerun `python -m shearbridge tune`."
        )


def tune_table(t: Mapping[str, Any]) -> str:
    """Candidates x noise levels: validation RMSE(g), then the score; the choice starred.

    RMSE(g) is in units of 1e-3."""
    tags = t["noise_tags"]
    rmse = {(tuple(r["fractions"]), r["noise_tag"]): r["val_rmse"] for r in t["table"]}
    score = dict(zip(map(tuple, t["candidates"]), t["scores"][t["score"]]))
    sigmas = dict(zip(tags, t["noise_grid"]))
    rows = [
        f"\\begin{{tabular}}{{l{'r' * len(tags)}r}}",
        "\\toprule",
        f" & \\multicolumn{{{len(tags)}}}{{c}}{{$10^3\\,$RMSE$(g)$, validation split}} & \\\\",
        "fractions & "
        + " & ".join(f"$\\sigma_n={fmt_noise(sigmas[g]).strip('$')}$" for g in tags)
        + " & score \\\\",
        "\\midrule",
    ]
    for c in map(tuple, t["candidates"]):
        label = fmt_fractions(c)
        if list(c) == t["choice"]:
            label = label[:-1] + "^\\star$"
        rows.append(
            label
            + " & "
            + " & ".join(f"${fmt_num(1e3 * rmse[(c, g)], 3)}$" for g in tags)
            + f" & ${fmt_num(score[c], 4)}$ \\\\"
        )
    rows += ["\\bottomrule", "\\end{tabular}"]
    return fit_width("\n".join(rows))


def main() -> None:
    from shearbridge.models.moments import WEIGHT_FRACTIONS

    summary = load_summary_json("floor")
    f, t = summary["floor"], summary["tuning"]
    check_agreement(t, WEIGHT_FRACTIONS)

    rows = {(r["key"], r["subset"]): r for r in f["floor"]["rows"]}
    for key in f["floor"]["variants"]:
        for subset, suffix in (("all", "all"), ("no_largest", "no5")):
            r = rows[(key, subset)]
            write_variable(f"floor_{key}_{suffix}", fmt_pm(r["rms_ratio"], r["rms_ratio_err"]))
            if key != f["floor"]["variants"][0]:
                write_variable(
                    f"floor_delta_{key}_{suffix}", fmt_pm(r["d_rms_ratio"], r["d_rms_ratio_err"])
                )
        r = rows[(key, "all")]
        write_variable(f"floor_median_{key}", fmt_pm(r["median_ratio"], r["median_ratio_err"]))
    clean = f["clean"]
    write_variable(
        "floor_clean_ratio",
        fmt_pm(
            clean["noise_free"]["all"]["rms_ratio"], clean["noise_free"]["all"]["rms_ratio_err"]
        ),
    )
    write_variable(
        "floor_clean_ratio_no5",
        fmt_pm(
            clean["noise_free"]["no_largest"]["rms_ratio"],
            clean["noise_free"]["no_largest"]["rms_ratio_err"],
        ),
    )
    write_variable(
        "floor_noisepart_ratio",
        fmt_pm(
            clean["noise_part"]["all"]["rms_ratio"], clean["noise_part"]["all"]["rms_ratio_err"]
        ),
    )
    for m in f["methods"]:
        small = f["binned"][m]["size_px"][0]
        write_variable(f"floor_smallbin_{m}", fmt_pm(small["rms_ratio"], small["rms_ratio_err"]))
        low = f["binned"][m]["low_flux"]
        write_variable(f"floor_lowflux_{m}", fmt_pm(low["rms_ratio"], low["rms_ratio_err"]))
    write_variable("floor_noise", fmt_noise(f["noise_sigma"]))
    write_variable("floor_n", fmt_int(f["n"]))
    write_variable("floor_nfit", fmt_int(f["floor"]["n_fit"]))
    write_variable("floor_smallbin_hi", f"${fmt_num(f['size_edges_px'][1], 2)}$")
    write_variable("floor_lowflux_n", fmt_int(f["binned"][f["methods"][0]]["low_flux"]["n"]))

    write_variable("tune_choice", fmt_fractions(t["choice"]))
    write_variable("tune_current", fmt_fractions(t["current"]))
    write_variable("tune_table", tune_table(t))
    write_variable("tune_nval", fmt_int(t["table"][0]["n_val"]))


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes: every numerics variant (the reference first, the others
    also as a change against it), the binned methods the comparison has, the tuning's choice."""
    keys = list(VARIANT_KEYS.values())
    methods = [m for m in FLOOR_METHODS if m in study.names("compare")]
    names = [f"floor_{k}_{s}" for k in keys for s in ("all", "no5")]
    names += [f"floor_delta_{k}_{s}" for k in keys[1:] for s in ("all", "no5")]
    names += [f"floor_median_{k}" for k in keys]
    names += [f"floor_{v}_{m}" for v in ("smallbin", "lowflux") for m in methods]
    names += [
        f"floor_{v}"
        for v in (
            "clean_ratio",
            "clean_ratio_no5",
            "noisepart_ratio",
            "noise",
            "n",
            "nfit",
            "smallbin_hi",
            "lowflux_n",
        )
    ]
    return names + [f"tune_{v}" for v in ("choice", "current", "table", "nval")]


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)

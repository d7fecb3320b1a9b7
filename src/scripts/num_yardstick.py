"""Numbers: the shear-noise yardstick per method and noise level.

Reads ``src/data/summary/yardstick.json``; writes ``neff_<method>_<tag>`` (effective source
density lost against a perfect estimator, per cent, bootstrap error; "--" where the method's
response cannot be calibrated), ``measratio_<method>_<tag>`` (calibrated measurement noise over
the Cramér–Rao bound of the same galaxies), ``neffw_<method>_<tag>`` (n_eff lost with the method's
own inverse-variance weights, where it predicts each galaxy's error), ``vantrees_gain_<tag>`` (the
van Trees RMSE bound with the population prior over its value without it) and ``sigma_e`` (the
population's shape noise per component).
Run on its own: ``python src/scripts/num_yardstick.py``.
"""

from shearbridge import study
from shearbridge.config import Profile, noise_tag
from shearbridge.paper.outputs import fmt_pm, write_variable
from shearbridge.summaries import load_summary_json


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes: every (method, level) of the bias_grid study
    (``neffw``: the methods that predict each galaxy's error), the van Trees gain at every level,
    ``sigma_e``."""
    cells = study.cells(profile, "bias_grid")
    names = [f"{k}_{m}_{t}" for k in ("neff", "measratio") for m, t in cells]
    names += [f"neffw_{m}_{t}" for m, t in cells if study.get_method(m).uncertainty]
    return names + [f"vantrees_gain_{noise_tag(s)}" for s in profile.noise_grid] + ["sigma_e"]


def main() -> None:
    s = load_summary_json("yardstick")
    for m, per in s["yardstick"].items():
        for tag, r in per.items():
            if not r["calibratable"]:
                write_variable(f"neff_{m}_{tag}", "--")
                write_variable(f"measratio_{m}_{tag}", "--")
                if study.get_method(m).uncertainty:
                    write_variable(f"neffw_{m}_{tag}", "--")
                continue
            write_variable(f"neff_{m}_{tag}", fmt_pm(r["neff_lost_pct"], r["neff_lost_pct_err"]))
            write_variable(
                f"measratio_{m}_{tag}", fmt_pm(r["meas_over_crlb"], r["meas_over_crlb_err"])
            )
            if "neff_w_lost_pct" in r:
                write_variable(
                    f"neffw_{m}_{tag}", fmt_pm(r["neff_w_lost_pct"], r["neff_w_lost_pct_err"])
                )
    for tag, lv in s["levels"].items():
        write_variable(
            f"vantrees_gain_{tag}", f"${lv['van_trees'] / lv['van_trees_no_prior']:.3f}$"
        )
    write_variable("sigma_e", f"${s['sigma_e']:g}$")


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)

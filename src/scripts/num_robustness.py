"""Numbers: RMSE/CRLB of every method on each robustness set, in absolute terms.

Reads ``src/data/summary/robustness.json`` (and the comparison's matched-filter S/N from
``compare.json``); writes ``robust_table`` (every method, set and noise
level, with the galaxy count where a method flagged some), ``robabs_<m>_<set>_<t>`` (RMSE/CRLB),
``robm_<m>_<set>_<t>`` (mean of m1, m2 from the linear fit of estimate on truth),
``robust_noise_levels`` and ``robust_n``. Run on its own: ``python src/scripts/num_robustness.py``.
"""

import math

from shearbridge import study
from shearbridge.paper.outputs import fmt_noise, fmt_pm, write_variable
from shearbridge.paper.tables import robustness_table
from shearbridge.summaries import load_summary_json

SET = {"test": "in-distribution", "test_exp": "exponential", "test_sersic": "S\\'ersic",
       "test_bulge_disk": "bulge+disk", "test_moffat": "Moffat PSF", "test_wide_psf": "wide PSF"}


def main() -> None:
    s = load_summary_json("robustness")
    tags = sorted(s["noise"], key=lambda t: s["noise"][t]["noise_sigma"])
    for tag in tags:
        per = s["noise"][tag]["methods"]
        for m in s["methods"]:
            for d, r in per[m]["results"].items():
                write_variable(f"robabs_{m}_{d}_{tag}", fmt_pm(r["ratio"], r["ratio_err"]))
                lb = r["linear_bias"]
                write_variable(f"robm_{m}_{d}_{tag}", fmt_pm(0.5 * (lb["m1"] + lb["m2"]),
                                                             0.5 * math.hypot(lb["m1_err"], lb["m2_err"])))
    write_variable("robust_table", robustness_table(s["noise"], tags, s["methods"],
                                                    {d: SET.get(d, d) for d in s["datasets"]},
                                                    lambda m: study.get_method(m).label,
                                                    load_summary_json("compare")["snr_mf"]))
    levels = [fmt_noise(s["noise"][t]["noise_sigma"]) for t in tags]
    write_variable("robust_noise_levels", " and ".join(levels))
    first = s["noise"][tags[0]]["methods"]["shapenet"]["results"]["test"]
    write_variable("robust_n", f"${first['n'] + first.get('n_flagged', 0)}$")


if __name__ == "__main__":
    main()

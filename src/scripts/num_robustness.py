"""Numbers: degradation of RMSE/CRLB outside the training set, and what the mixture training buys.

Reads ``src/data/summary/robustness.json``; per noise tag ``t`` of the study writes
``robust_worst_factor_<m>_<t>`` / ``robust_worst_set_<m>_<t>`` (worst degradation factor
against the in-distribution row and the set where it happens, for every method of the study), ``robust_mix_worst_factor_<t>`` (ShapeNet-mixture's degradation on ShapeNet's
worst set) and ``robust_mix_gain_<t>`` (ShapeNet's RMSE/CRLB there over the mixture
network's); plus ``robust_noise_levels`` and ``robust_n``. Run on its own:
``python src/scripts/num_robustness.py``.
"""

from shearbridge.paper.outputs import fmt_noise, fmt_pm, write_variable
from shearbridge.stats.resample import quotient
from shearbridge.summaries import load_summary_json

SET = {"test_exp": "exponential galaxies", "test_sersic": "S\\'ersic galaxies",
       "test_bulge_disk": "bulge+disk galaxies", "test_moffat": "the Moffat PSF",
       "test_wide_psf": "the wider PSF"}


def main() -> None:
    s = load_summary_json("robustness")
    tags = sorted(s["noise"], key=lambda t: s["noise"][t]["noise_sigma"])
    for tag in tags:
        per = s["noise"][tag]["methods"]
        for m in s["methods"]:
            worst = per[m]["worst"]
            write_variable(f"robust_worst_factor_{m}_{tag}", fmt_pm(worst["factor"], worst["err"]))
            write_variable(f"robust_worst_set_{m}_{tag}", SET.get(worst["dataset"], worst["dataset"]))
        where = per["shapenet"]["worst"]["dataset"]
        mix = per["shapenet_mix"]["degradation"][where]
        write_variable(f"robust_mix_worst_factor_{tag}", fmt_pm(mix["factor"], mix["err"]))
        a, b = per["shapenet"]["results"][where], per["shapenet_mix"]["results"][where]
        write_variable(f"robust_mix_gain_{tag}", fmt_pm(*quotient(a["ratio"], a["ratio_err"], b["ratio"], b["ratio_err"])))
    levels = [fmt_noise(s["noise"][t]["noise_sigma"]) for t in tags]
    write_variable("robust_noise_levels", " and ".join(levels))
    first = s["noise"][tags[0]]["methods"]["shapenet"]["results"]["test"]
    write_variable("robust_n", f"${first['n']}$")


if __name__ == "__main__":
    main()

"""Numbers: RMSE/CRLB per method and noise level, the bias table, the hypothesis test.

Reads ``src/data/summary/compare.json``. Run on its own: ``python src/scripts/num_compare.py``.
"""

from shearbridge import study
from shearbridge.paper.outputs import fmt_noise, fmt_pm, fmt_sci, write_variable
from shearbridge.paper.tables import bias_table
from shearbridge.stats.resample import quotient
from shearbridge.summaries import load_summary_json
from shearbridge.summaries.compare import CRLB_PERCENTILES as PERCENTILES


def main() -> None:
    s = load_summary_json("compare")
    comp = s["compare"]
    for m, per in comp.items():
        for tag, r in per.items():
            write_variable(f"ratio_{m}_{tag}", fmt_pm(r["ratio"], r["ratio_err"]))
    tags = sorted(comp["baseline"], key=lambda t: comp["baseline"][t]["noise_sigma"])
    low = tags[0]
    unit = s["crlb_unit"]
    sigma_low = comp["baseline"][low]["noise_sigma"]
    write_variable("crlb_rms_1e-05", fmt_sci(unit["rms"] * sigma_low))
    write_variable("crlb_median_1e-05", fmt_sci(unit["median"] * sigma_low))
    write_variable("crlb_band_pct", f"{PERCENTILES[0]}--{PERCENTILES[1]}")
    write_variable("n_crlb", f"${comp['baseline'][low]['n']}$")
    write_variable("mlfit_impl", "the JAX Levenberg--Marquardt fit of this work (\\texttt{shearbridge.estimators.mlfit})")
    if "ngmix" in comp:
        write_variable("ngmix_status", "ngmix was installed on the build machine and is included")
    else:
        write_variable("ngmix_status", "ngmix (conda-forge only) was not installed on the build machine, so the "
                       "ML-fit numbers come from our JAX fitter")
    b, f = comp["baseline"][low], comp["mlfit"][low]
    write_variable("hypothesis_ratio_low", fmt_pm(*quotient(b["rmse_g"], b["rmse_g_err"], f["rmse_g"], f["rmse_g_err"])))

    # the improved network against the baseline (same galaxies, same noise), per noise level
    if "shapenet" in comp:
        within = 0
        for tag in tags:
            b, n = comp["baseline"][tag], comp["shapenet"][tag]
            write_variable(f"improve_shapenet_{tag}",
                           fmt_pm(*quotient(b["rmse_g"], b["rmse_g_err"], n["rmse_g"], n["rmse_g_err"])))
            within += n["ratio"] < 2.0
        write_variable("shapenet_within2", f"{within} of the {len(tags)}")

    bias_tags = sorted({t for per in s["bias"].values() for t in per}, key=lambda t: float(t))
    write_variable("bias_noise_levels", " and ".join(fmt_noise(float(t)) for t in bias_tags))
    write_variable("bias_table", bias_table(s["bias"], bias_tags, lambda m: study.get_method(m).label))


if __name__ == "__main__":
    main()

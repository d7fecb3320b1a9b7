"""Numbers: RMSE/CRLB per method and noise level, the bias table, the hypothesis test.

Reads ``src/data/summary/compare.json``. Run on its own: ``python src/scripts/num_compare.py``.
"""

import math

from shearbridge import study
from shearbridge.paper.outputs import fmt_pm, fmt_sci, write_variable
from shearbridge.summaries import load_summary_json
from shearbridge.summaries.compare import CRLB_PERCENTILES as PERCENTILES


def fmt_noise(sigma: float) -> str:
    return f"$10^{{{round(math.log10(sigma))}}}$"


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
    q = b["rmse_g"] / f["rmse_g"]
    q_err = q * math.hypot(b["rmse_g_err"] / b["rmse_g"], f["rmse_g_err"] / f["rmse_g"])
    write_variable("hypothesis_ratio_low", fmt_pm(q, q_err))

    # the improved network against the baseline (same galaxies, same noise), per noise level
    if "shapenet" in comp:
        within = 0
        for tag in tags:
            b, n = comp["baseline"][tag], comp["shapenet"][tag]
            q = b["rmse_g"] / n["rmse_g"]
            q_err = q * math.hypot(b["rmse_g_err"] / b["rmse_g"], n["rmse_g_err"] / n["rmse_g"])
            write_variable(f"improve_shapenet_{tag}", fmt_pm(q, q_err))
            within += n["ratio"] < 2.0
        write_variable("shapenet_within2", f"{within} of the {len(tags)}")

    bias_tags = sorted({t for per in s["bias"].values() for t in per}, key=lambda t: float(t))
    write_variable("bias_noise_levels", " and ".join(fmt_noise(float(t)) for t in bias_tags))
    rows = ["\\begin{tabular}{llcccc}", "\\toprule",
            "method & $\\sigma_n$ & $m_1$ & $m_2$ & $c_1$ & $c_2$ \\\\", "\\midrule"]
    for m, per in s["bias"].items():
        for tag in bias_tags:
            r = per[tag]
            cells = [fmt_pm(r[k], r[f"{k}_err"], err_digits=2) for k in ("m1", "m2", "c1", "c2")]
            rows.append(f"{study.get_method(m).label} & {fmt_noise(r['noise_sigma'])} & " + " & ".join(cells) + " \\\\")
    rows += ["\\bottomrule", "\\end{tabular}"]
    write_variable("bias_table", "\n".join(rows))


if __name__ == "__main__":
    main()

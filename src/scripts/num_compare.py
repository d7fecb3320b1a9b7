"""Numbers: RMSE/CRLB per method and noise level, comparison and bias tables, the hypothesis test.

Every method is scored on the same galaxies: those no method flags (``common`` in the summary).
Writes ``ratio_<m>_<t>`` (RMS ratio on the common set), ``robratio_<m>_<t>`` (robust ratio),
``fail_<m>_<t>`` (flagged per cent), ``ratioall_<m>_<t>`` (RMS ratio over all galaxies with the
flagged estimates kept), ``ncommon_<t>``, ``snr_<t>`` (median matched-filter S/N),
``gain_<formula>_<network>_<t>`` (RMSE of the formula over the network's), ``seedsd_<net>_<t>``
(scatter of a network's RMSE/CRLB over training seeds; where measured it is added in quadrature to
the bootstrap error of ``ratio_<net>_<t>`` and in the table), ``n_seeds``, the tables. Reads
``src/data/summary/compare.json``. Run on its own: ``python src/scripts/num_compare.py``.
"""

import math

from shearbridge import study
from shearbridge.config import Profile, noise_tag
from shearbridge.config.experiments import SEED_VARIANTS
from shearbridge.paper.outputs import fmt_pm, fmt_sci, write_variable
from shearbridge.paper.tables import compare_table, fmt_snr
from shearbridge.stats.resample import quotient
from shearbridge.summaries import load_summary_json


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes: every (method, level) of the compare study, the per-level
    numbers, the training gains of the pairs compared at a level, the seed scatter of the headline
    networks retrained with other seeds, the tables and the hypothesis test."""
    cells, methods = study.cells(profile, "compare"), study.names("compare")
    tags = [noise_tag(s) for s in profile.noise_grid]
    names = [f"{k}_{m}_{t}" for k in ("ratio", "robratio", "fail", "ratioall") for m, t in cells]
    names += [f"{k}_{t}" for k in ("ncommon", "snr") for t in tags]
    names += [
        f"gain_{a}_{b}_{t}"
        for a, b in study.TRAINING_GAIN
        if {a, b} <= set(methods)
        for t in tags
        if (a, t) in cells and (b, t) in cells
    ]
    names += [
        f"seedsd_{n}_{t}"
        for n in SEED_VARIANTS
        if n in methods
        for t in study.study_tags(profile, "seeds")
    ]
    names += [f"improve_shapenet_{t}" for m, t in cells if m == "shapenet"]
    return names + [
        "ntotal_compare",
        "n_seeds",
        "compare_table",
        "crlb_rms_1e-05",
        "crlb_median_1e-05",
        "n_crlb",
        "crlb_band_pct",
        "mlfit_impl",
        "ngmix_status",
        "hypothesis_ratio_low",
        "shapenet_within2",
    ]


def main() -> None:
    from shearbridge.summaries.compare import CRLB_PERCENTILES as PERCENTILES  # JAX: loaded to run

    s = load_summary_json("compare")
    comp, common = s["compare"], s["common"]
    tags = sorted(comp["baseline"], key=lambda t: comp["baseline"][t]["noise_sigma"])
    sigma = {t: comp["baseline"][t]["noise_sigma"] for t in tags}
    for t in tags:
        write_variable(f"ncommon_{t}", f"${common[t]['n_common']}$")
        write_variable(f"snr_{t}", fmt_snr(s["snr_mf"][t]["median"]))
        for m, r in common[t]["methods"].items():
            err = math.hypot(r["ratio_err"], s["seeds"].get(t, {}).get(m, {}).get("sd", 0.0))
            write_variable(f"ratio_{m}_{t}", fmt_pm(r["ratio"], err))
            write_variable(f"robratio_{m}_{t}", fmt_pm(r["robust_ratio"], r["robust_ratio_err"]))
            write_variable(f"fail_{m}_{t}", f"${100 * r['flagged_fraction']:.1f}$")
            write_variable(f"ratioall_{m}_{t}", f"${r['ratio_all_finite']:.2f}$")
        for pair, g in common[t]["gain"].items():
            write_variable(
                f"gain_{pair.replace('/', '_')}_{t}",
                fmt_pm(g["ratio"], g["ratio_err"], err_digits=2),
            )
    write_variable("ntotal_compare", f"${common[tags[0]]['n_total']}$")
    # (method, tag) -> seed scatter of RMSE/CRLB, added in quadrature to the bootstrap error
    seed_sd = {}
    for t, per in s["seeds"].items():
        for net, r in per.items():
            seed_sd[net, t] = r["sd"]
            write_variable(f"seedsd_{net}_{t}", f"${r['sd']:.2g}$")
            write_variable("n_seeds", f"${len(r['seeds'])}$")
    write_variable(
        "compare_table",
        compare_table(
            common,
            s["snr_mf"],
            tags,
            sigma,
            list(comp),
            lambda m: study.get_method(m).label,
            seed_sd,
        ),
    )
    low = tags[0]
    unit = s["crlb_unit"]
    sigma_low = sigma[low]
    write_variable("crlb_rms_1e-05", fmt_sci(unit["rms"] * sigma_low))
    write_variable("crlb_median_1e-05", fmt_sci(unit["median"] * sigma_low))
    write_variable("crlb_band_pct", f"{PERCENTILES[0]}--{PERCENTILES[1]}")
    write_variable("n_crlb", f"${comp['baseline'][low]['n']}$")
    write_variable(
        "mlfit_impl",
        "the JAX Levenberg--Marquardt fit of this work (\\texttt{shearbridge.estimators.mlfit})",
    )
    if "ngmix" in comp:
        write_variable("ngmix_status", "ngmix was installed on the build machine and is included")
    else:
        write_variable(
            "ngmix_status",
            "ngmix (conda-forge only) was not installed on the build machine, so the "
            "ML-fit numbers come from our JAX fitter",
        )
    b, f = common[low]["methods"]["baseline"], common[low]["methods"]["mlfit"]
    write_variable(
        "hypothesis_ratio_low",
        fmt_pm(*quotient(b["rmse_g"], b["rmse_g_err"], f["rmse_g"], f["rmse_g_err"])),
    )

    # the improved network against the baseline (same galaxies, same noise), per noise level
    if "shapenet" in comp:
        within, levels = 0, [t for t in tags if t in comp["shapenet"]]  # the levels it runs at
        for tag in levels:
            b, n = common[tag]["methods"]["baseline"], common[tag]["methods"]["shapenet"]
            write_variable(
                f"improve_shapenet_{tag}",
                fmt_pm(*quotient(b["rmse_g"], b["rmse_g_err"], n["rmse_g"], n["rmse_g_err"])),
            )
            within += n["ratio"] < 2.0
        write_variable("shapenet_within2", f"{within} of the {len(levels)}")


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)

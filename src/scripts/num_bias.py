"""Numbers: the shear test's m, c, PSF leakage alpha and precision, every method and noise level.

Reads ``src/data/summary/bias.json``; writes, for every method in it (the registry's
``bias_grid`` study) and every noise tag: ``bias_<method>_<k>_<tag>`` for k in m1, m2, c1, c2
(round PSF), ``mrel1``, ``mrel2`` (relative to the label-ideal estimator on the same galaxies)
and ``alpha`` (anisotropic-PSF test, ``c1 / g_psf``); ``sigmam_<method>_<tag>`` (achieved
sigma(m)) and ``nneed_<method>_<tag>`` (galaxies that would reach the target);
``bias_ngal_<method>`` (galaxies measured); ``bias_snr_<tag>`` (median ShearNet S/N) and
``bias_snrmf_<tag>`` (median matched-filter S/N); ``bias_ideal_m``, ``bias_ideal_c`` (largest
label-ideal |m|, |c|: the design's floor); ``bias_precision_table``; ``psf_test_g``;
``snr_mf_over_shearnet``; ``bias_table`` (Table 2: the ``bias`` study's levels, with alpha) and
``bias_noise_levels``; ``lsst_meet_<tag>``, ``lsst_fail_<tag>``, ``lsst_open_<tag>`` (the methods
whose |m1| and |m2| are below the LSST requirement by more than two errors, above it by more
than two errors in either component, or neither); AnaCal's recorded configuration and tuning
(``anacal_version``, ``anacal_sigma``, ``anacal_c0``, ``anacal_tune_n``, ``anacal_tune_tol``,
``anacal_sigma_over_psf``); ``shear_test_g``; the metacal-calibrated test of the registry's
``metacal`` methods: ``mcal_<method>_<k>_<tag>`` (k: m1, m2 calibrated, R the mean response, wild
the per cent of stamps whose response exceeds :data:`shearbridge.stats.bias.WILD_RESPONSE` in size),
``mcal_table``, ``mcal_step``, ``mcal_noise_levels``. Run on its own:
``python src/scripts/num_bias.py``.
"""

from shearbridge import study
from shearbridge.config import (
    SIGMA_M_HIGH_SNR,
    SIGMA_M_TARGET_HIGH_SNR,
    SIGMA_M_TARGET_SURVEY,
    Profile,
    SimConfig,
    get_profile,
    noise_tag,
)
from shearbridge.io import read_json
from shearbridge.paper.outputs import fmt_int, fmt_noise, fmt_pm, fmt_sci, write_variable
from shearbridge.paper.tables import bias_precision_table, bias_table, mean_response, metacal_table
from shearbridge.summaries import load_summary_json

BIAS_KEYS = ("m1", "m2", "c1", "c2", "mrel1", "mrel2", "alpha")
ANACAL_KEYS = ("version", "sigma", "sigma_over_psf", "c0", "tune_n", "tune_tol")


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes: every (method, level) of the bias_grid study, the
    verdicts and S/N at every level of the profile, the metacal study's cells, AnaCal's
    configuration when AnaCal is in the bias_grid study, the tables and constants."""
    cells, methods = study.cells(profile, "bias_grid"), study.names("bias_grid")
    tags = [noise_tag(s) for s in profile.noise_grid]
    names = [f"bias_{m}_{k}_{t}" for m, t in cells for k in BIAS_KEYS]
    names += [f"{k}_{m}_{t}" for k in ("sigmam", "nneed") for m, t in cells]
    names += [f"bias_ngal_{m}" for m in methods]
    names += [f"lsst_{k}_{t}" for k in ("meet", "fail", "open") for t in tags]
    names += [f"bias_{v}_{t}" for v in ("snr", "snrmf") for t in tags]
    names += [
        "snr_mf_over_shearnet",
        "shear_test_g",
        "bias_ideal_m",
        "bias_ideal_c",
        "sigmam_target_high",
        "sigmam_target_survey",
        "sigmam_high_snr",
        "bias_precision_table",
        "bias_table",
        "bias_noise_levels",
        "psf_test_g",
        "mcal_table",
        "mcal_step",
        "mcal_wild",
        "mcal_noise_levels",
    ]
    names += [
        f"mcal_{m}_{k}_{t}"
        for m in study.names("metacal")
        for k in ("m1", "m2", "R", "wild")
        for t in study.study_tags(profile, "metacal")
    ]
    return names + ([f"anacal_{v}" for v in ANACAL_KEYS] if "anacal" in methods else [])


def main() -> None:
    # GalSim and SciPy: loaded to run, not to declare (the Snakefile loads outputs())
    from shearbridge.sim.catalogue import PSF_TEST_G
    from shearbridge.stats.metacal_fourier import METACAL_STEP
    from shearbridge.diagnosis.anacal_tuning import SCORE_TOLERANCE
    from shearbridge.layout import Layout
    from shearbridge.stats.bias import WILD_RESPONSE

    s = load_summary_json("bias")
    tags = sorted(
        next(iter(s["bias"].values())), key=float
    )  # noise ascending (the summary sorts keys as text)
    for m in s["bias"]:
        for tag in (t for t in tags if t in s["bias"][m]):  # the levels the method runs at
            r, rp = s["bias"][m][tag], s["bias_psf"][m][tag]
            for k in ("m1", "m2", "c1", "c2"):
                write_variable(f"bias_{m}_{k}_{tag}", fmt_pm(r[k], r[f"{k}_err"]))
            for k in (1, 2):
                write_variable(
                    f"bias_{m}_mrel{k}_{tag}", fmt_pm(r[f"m{k}_rel"], r[f"m{k}_rel_err"])
                )
            write_variable(f"bias_{m}_alpha_{tag}", fmt_pm(rp["alpha"], rp["alpha_err"]))
            write_variable(f"sigmam_{m}_{tag}", fmt_sci(r["precision"]["sigma_m"], 1))
            write_variable(f"nneed_{m}_{tag}", fmt_int(r["precision"]["n_needed"]))
        write_variable(f"bias_ngal_{m}", fmt_int(s["bias"][m][tags[0]]["n_galaxies_measured"]))
    for (
        tag
    ) in tags:  # which methods meet |m| < the LSST requirement, with errors small enough to tell
        verdict = {v: [] for v in ("meet", "fail", "open")}
        for m in (m for m in s["bias"] if tag in s["bias"][m]):
            r = s["bias"][m][tag]
            hi = max(abs(r[f"m{k}"]) + 2 * r[f"m{k}_err"] for k in (1, 2))
            lo = max(abs(r[f"m{k}"]) - 2 * r[f"m{k}_err"] for k in (1, 2))
            key = (
                "meet"
                if hi < s["requirements"]["m"]
                else "fail"
                if lo > s["requirements"]["m"]
                else "open"
            )
            verdict[key].append(study.get_method(m).label)
        for key, names in verdict.items():
            write_variable(f"lsst_{key}_{tag}", ", ".join(names) if names else "none")
    first = next(iter(s["bias"].values()))
    for tag in tags:
        write_variable(f"bias_snr_{tag}", f"${first[tag]['median_snr']:.0f}$")
        write_variable(f"bias_snrmf_{tag}", f"${first[tag]['median_snr_mf']:.0f}$")
    r = first[tags[0]]
    write_variable("snr_mf_over_shearnet", f"${r['median_snr_mf'] / r['median_snr']:.1f}$")
    floor = s["ideal_floor"]
    write_variable("bias_ideal_m", fmt_sci(max(floor["m1"], floor["m2"]), 1))
    write_variable("bias_ideal_c", fmt_sci(max(floor["c1"], floor["c2"]), 1))
    write_variable("sigmam_target_high", fmt_sci(SIGMA_M_TARGET_HIGH_SNR, 1))
    write_variable("sigmam_target_survey", fmt_sci(SIGMA_M_TARGET_SURVEY, 1))
    write_variable("sigmam_high_snr", f"${SIGMA_M_HIGH_SNR:.0f}$")
    chosen = study.study_tags(get_profile(s["profile"]), "bias")  # Table 2's levels
    write_variable("bias_noise_levels", " and ".join(fmt_noise(float(t)) for t in chosen))
    write_variable(
        "bias_table",
        bias_table(s["bias"], chosen, lambda m: study.get_method(m).label, s["bias_psf"]),
    )
    write_variable(
        "bias_precision_table",
        bias_precision_table(s["bias"], tags, lambda m: study.get_method(m).label),
    )
    write_variable("psf_test_g", f"${PSF_TEST_G:g}$")
    mcal = s["bias_mcal"]
    for m, per in mcal.items():
        for tag, r in per.items():
            for k in ("m1", "m2"):
                write_variable(f"mcal_{m}_{k}_{tag}", fmt_pm(r[k], r[f"{k}_err"]))
            write_variable(f"mcal_{m}_R_{tag}", fmt_pm(*mean_response(r)))
            write_variable(f"mcal_{m}_wild_{tag}", f"${100 * r['wild_response_fraction']:.1f}$")
    write_variable(
        "mcal_table", metacal_table(s["bias"], mcal, lambda m: study.get_method(m).label)
    )
    write_variable("mcal_step", f"${METACAL_STEP:g}$")
    write_variable("mcal_wild", f"${WILD_RESPONSE:g}$")
    write_variable(
        "mcal_noise_levels",
        " and ".join(
            fmt_noise(float(t)) for t in study.study_tags(get_profile(s["profile"]), "metacal")
        ),
    )
    if "anacal" in s["bias"]:  # the configuration the runs recorded
        cfg = s["bias"]["anacal"][tags[0]]["config"]
        write_variable("anacal_version", cfg["anacal_version"])
        write_variable("anacal_sigma", f"${cfg['sigma_arcsec']:g}$")
        psf = (
            SimConfig().psf_sigma_arcsec
        )  # the study's PSF (shear-test set: the default simulation)
        write_variable("anacal_sigma_over_psf", f"${cfg['sigma_arcsec'] / psf:.1f}$")
        tuning_path = Layout(s["profile"]).diagnosis("anacal_tuning.json")
        tuning = read_json(tuning_path)
        if not tuning["agrees"]:
            msg = (
                f"AnaCal's defaults {tuning['current']} are not the tuning scan's choice "
                f"{tuning['choice']} ({tuning_path}): set them in estimators/anacal.py"
            )
            if s["profile"] == "paper":
                raise SystemExit(msg)
            print(f"num_bias: warning ({s['profile']} profile): {msg}")
        write_variable("anacal_c0", f"${tuning['current']['c0']:g}$")
        write_variable("anacal_tune_n", fmt_int(tuning["n_galaxies"]))
        write_variable("anacal_tune_tol", f"${100 * SCORE_TOLERANCE:g}$")
    write_variable(
        "shear_test_g", f"${SimConfig().applied_shear:g}$"
    )  # |g| applied in the paired test


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)

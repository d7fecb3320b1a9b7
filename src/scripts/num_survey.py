"""Numbers: the survey-scale shear test (m, c, alpha per method at S/N ~ 10, 20 and 200).

Reads ``src/data/summary/survey.json``; writes the table ``survey_table``, the cost table
``survey_cost_table``, and per method key ``<key>`` (the registry's ``survey`` methods, and
``<method>_mcal`` for the ``survey_metacal`` ones) and level ``<tag>``:
``survey_{m1,m2,c1,c2,alpha1,alpha2}_<key>_<tag>`` (value with its jackknife error) and
``survey_sigma_{m,c,alpha}_<key>_<tag>`` (the larger component's error); per level
``survey_snr_<tag>`` (median matched-filter S/N); per method ``survey_n_<key>`` (galaxies at the
lowest S/N), ``survey_source_<key>`` (which tier) and ``survey_rate_<key>`` (stamps/s, one core);
the applied shear ``survey_g``; the survey tier's size and state (``survey_tier_galaxies``,
``survey_tier_state``); the requirement and targets (``survey_lsst_m``, ``survey_target_low``,
``survey_target_high``); the cost table's core counts (``survey_cores``).
Run on its own: ``python src/scripts/num_survey.py``.
"""

from shearbridge.config import Profile, get_profile, noise_tag
from shearbridge.config.noise import METACAL_NOISE, SHEARNET_HIGH
from shearbridge.config.survey import tier_for_profile
from shearbridge.paper.outputs import fmt_int, fmt_sci, write_variable
from shearbridge.paper.tables import fmt_snr, pm_or_dash, survey_cost_table, survey_table
from shearbridge.steps.survey_measure import survey_methods
from shearbridge.summaries import load_summary_json
from shearbridge.summaries.survey import CORES, cost_rows, target_sigma_m

QUANTITIES = ("m1", "m2", "c1", "c2", "alpha1", "alpha2")


def _tags(profile: Profile) -> list[str]:
    return [noise_tag(s) for s in tier_for_profile(profile.name).levels]


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes: from the registry's survey methods and the tier's
    levels."""
    keys = [key for key, _, _ in survey_methods()]
    tags = _tags(profile)
    names = ["survey_table", "survey_cost_table", "survey_g", "survey_tier_galaxies"]
    names += ["survey_lsst_m", "survey_target_low", "survey_target_high", "survey_cores"]
    names += ["survey_tier_state"] + [f"survey_snr_{t}" for t in tags]
    for key in keys:
        names += [f"survey_{x}_{key}" for x in ("n", "source", "rate")]
        for t in tags:
            names += [f"survey_{q}_{key}_{t}" for q in QUANTITIES]
            names += [f"survey_sigma_{q}_{key}_{t}" for q in ("m", "c", "alpha")]
    return names


def main() -> None:
    s = load_summary_json("survey")
    methods = s["methods"]
    first = next(iter(methods.values()))
    tags = _tags(get_profile(s["profile"]))  # the tier's order: lowest S/N first
    write_variable("survey_table", survey_table(methods, tags))
    write_variable("survey_cost_table", survey_cost_table(cost_rows(s), CORES))
    write_variable("survey_g", f"{s['applied_shear']:g}")  # used inside math
    write_variable("survey_lsst_m", fmt_sci(s["requirements"]["lsst_m"], 1, math_mode=False))
    write_variable("survey_target_low", fmt_sci(target_sigma_m(METACAL_NOISE), 1, math_mode=False))
    write_variable("survey_target_high", fmt_sci(target_sigma_m(SHEARNET_HIGH), 1, math_mode=False))
    write_variable("survey_cores", " and ".join(str(c) for c in CORES))
    tier = s["survey_tier"]
    write_variable("survey_tier_galaxies", fmt_int(tier["galaxies"]))
    present, total = sum(tier["chunks_present"].values()), sum(tier["chunks_of"].values())
    write_variable(
        "survey_tier_state",
        "complete and matching this code"
        if tier["complete"]
        else f"{present} of its {total} method chunks committed, "
        "not all matching this code: not shown",
    )
    for tag in tags:
        write_variable(f"survey_snr_{tag}", fmt_snr(first["levels"][tag]["median_snr"]))
    for key, m in methods.items():
        low = m["levels"][tags[0]]
        write_variable(f"survey_n_{key}", fmt_int(low["n_galaxies"]))
        write_variable(f"survey_source_{key}", f"{m['source']} ({m['tier']})")
        write_variable(f"survey_rate_{key}", fmt_int(round(m["stamps_per_second"])))
        for tag in tags:
            r = m["levels"][tag]
            for q in QUANTITIES:
                write_variable(f"survey_{q}_{key}_{tag}", pm_or_dash(r, q))
            for q in ("m", "c", "alpha"):
                errs = (r[f"{q}1_err"], r[f"{q}2_err"])
                text = "--" if None in errs else fmt_sci(max(errs), 1)
                write_variable(f"survey_sigma_{q}_{key}_{tag}", text)


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)

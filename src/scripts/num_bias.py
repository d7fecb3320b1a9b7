"""Numbers: m1, m2, c1, c2 (jackknife errors) of every method of the bias study.

Reads ``src/data/summary/bias.json``; writes ``bias_<method>_<k>_<tag>`` for every method
in it (the registry's ``bias_grid`` study) and k in m1, m2, c1, c2 at the ``bias`` study's
noise levels (the lowest, 1e-3 and the highest), and ``bias_snr_<tag>`` (median ShearNet S/N of
the shear-test galaxies, as the runs recorded it) and ``snr_mf_over_shearnet`` (median
matched-filter S/N over ShearNet's F / (L sigma)), and AnaCal's recorded configuration
(``anacal_version``, ``anacal_sigma`` kernel scale in arcsec, ``anacal_sigma_over_psf``), and
``shear_test_g``, the shear amplitude of the paired test. Run on its own: ``python src/scripts/num_bias.py``.
"""

from shearbridge import study
from shearbridge.config import SimConfig, get_profile
from shearbridge.paper.outputs import fmt_pm, write_variable
from shearbridge.summaries import load_summary_json


def main() -> None:
    s = load_summary_json("bias")
    chosen = study.study_tags(get_profile(s["profile"]), "bias")
    for m in s["bias"]:
        for tag in chosen:
            r = s["bias"][m][tag]
            for k in ("m1", "m2", "c1", "c2"):
                write_variable(f"bias_{m}_{k}_{tag}", fmt_pm(r[k], r[f"{k}_err"]))
    first = next(iter(s["bias"].values()))
    for tag in chosen:
        write_variable(f"bias_snr_{tag}", f"${first[tag]['median_snr']:.0f}$")
    r = first[chosen[0]]
    write_variable("snr_mf_over_shearnet", f"${r['median_snr_mf'] / r['median_snr']:.1f}$")
    if "anacal" in s["bias"]:  # the configuration the runs recorded
        cfg = s["bias"]["anacal"][chosen[0]]["config"]
        write_variable("anacal_version", cfg["anacal_version"])
        write_variable("anacal_sigma", f"${cfg['sigma_arcsec']:g}$")
        psf = SimConfig().psf_sigma_arcsec  # the study's PSF (shear-test set: the default simulation)
        write_variable("anacal_sigma_over_psf", f"${cfg['sigma_arcsec'] / psf:.1f}$")
    write_variable("shear_test_g", f"${SimConfig().applied_shear:g}$")  # |g| applied in the paired test


if __name__ == "__main__":
    main()

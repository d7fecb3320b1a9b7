"""Numbers: m1, m2, c1, c2 (jackknife errors) of every method of the bias study, raw and calibrated.

Reads ``src/data/summary/bias.json``; writes ``bias_<method>_<k>_<tag>`` for every method
in it (the registry's ``bias_grid`` study) and k in m1, m2, c1, c2 at the ``bias`` study's
noise levels (the lowest and 1e-3, else the highest), ``bias_R_<network>_<tag>``
(mean diagonal response of each calibrated network, with its error) and ``bias_n_response`` (stamps used for the
response), ``bias_delta`` (the response's shear step, as the runs recorded it). Run on its own: ``python src/scripts/num_bias.py``.
"""

import math

from shearbridge import study
from shearbridge.config import get_profile
from shearbridge.paper.outputs import fmt_pm, write_variable
from shearbridge.summaries import load_summary_json


def main() -> None:
    s = load_summary_json("bias")
    tags = sorted(s["bias"]["shapenet"], key=lambda t: float(t))
    chosen = study.study_tags(get_profile(s["profile"]), "bias")
    for m in s["bias"]:
        for tag in chosen:
            r = s["bias"][m][tag]
            for k in ("m1", "m2", "c1", "c2"):
                write_variable(f"bias_{m}_{k}_{tag}", fmt_pm(r[k], r[f"{k}_err"]))
    for cal in [m for m in s["bias"] if study.get_method(m).calibrates]:
        m = study.get_method(cal).calibrates
        for tag in chosen:
            r = s["bias"][cal][tag]
            R = 0.5 * (r["R"][0][0] + r["R"][1][1])
            R_err = 0.5 * math.hypot(r["R_err"][0][0], r["R_err"][1][1])
            write_variable(f"bias_R_{m}_{tag}", fmt_pm(R, R_err))
    for tag in chosen:  # diagonal responses: ShapeNet's and the exact moments' on the same images
        r = s["bias"]["shapenet_cal"][tag]
        for k in (0, 1):
            write_variable(f"bias_R{k + 1}{k + 1}_shapenet_{tag}", fmt_pm(r["R"][k][k], r["R_err"][k][k]))
            write_variable(f"bias_R{k + 1}{k + 1}_moments_{tag}",
                           fmt_pm(r["R_moments"][k][k], r["R_moments_err"][k][k]))
    write_variable("bias_n_response", f"${s['bias']['shapenet_cal'][tags[0]]['n_response']}$")
    write_variable("bias_delta", f"${s['bias']['shapenet_cal'][tags[0]]['delta']:g}$")


if __name__ == "__main__":
    main()

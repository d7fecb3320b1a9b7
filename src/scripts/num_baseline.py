"""Numbers: the baseline's test RMSE(g) per noise level (bootstrap errors) and training facts.

Reads ``src/data/summary/baseline.json``; writes ``baseline_rmse_<tag>.txt``,
``baseline_m_<tag>.txt`` (mean slope - 1 of g1, g2) and the training-size numbers.
Run on its own: ``python src/scripts/num_baseline.py``.
"""

import numpy as np

from shearbridge.config import Profile, noise_tag
from shearbridge.paper.outputs import fmt_num, fmt_pm, write_variable
from shearbridge.summaries import load_summary_json


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes: RMSE and m at every level of the profile, the training
    facts."""
    tags = [noise_tag(s) for s in profile.noise_grid]
    return [f"baseline_{k}_{t}" for k in ("rmse", "m") for t in tags] + [
        "baseline_n_test",
        "baseline_best_epochs",
        "baseline_train_rate",
    ]


def main() -> None:
    s = load_summary_json("baseline")
    epochs, rates = [], []
    for tag, run in sorted(s["noise"].items(), key=lambda kv: kv[1]["noise_sigma"]):
        sh = run["shear"]
        write_variable(f"baseline_rmse_{tag}", fmt_pm(sh["rmse_g"], sh["rmse_g_err"]))
        m = np.mean([sh[c]["m"] for c in ("g1", "g2")])
        m_err = np.hypot(sh["g1"]["m_err"], sh["g2"]["m_err"]) / 2
        write_variable(f"baseline_m_{tag}", fmt_pm(m, m_err))
        epochs.append(run["best_epoch"])
        rates.append(run["timing"]["samples_per_s_session"])
    write_variable("baseline_n_test", f"${run['n_test']}$")
    write_variable("baseline_best_epochs", ", ".join(f"${e}$" for e in epochs))
    write_variable("baseline_train_rate", f"${fmt_num(float(np.median(rates)), 2)}$")


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)

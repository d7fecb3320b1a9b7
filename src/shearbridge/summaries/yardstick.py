"""The shear-noise yardstick every estimator shares (n_eff): the summary of the ``yardstick`` step.

For each method and noise level, the first ``n_crlb`` comparison galaxies (those with a
per-galaxy Cramér–Rao bound) are measured in two independent noise realisations: the test set's
own noise field (realisation A) and a second one drawn for this step only (realisation B, stream
``SeedSequence(profile.seed, spawn_key=(STREAM_ID["test"], 2, i))`` for galaxy ``i``, used by
nothing else). The measurement noise of a method's *calibrated* shear is the scatter between the
two, ``sigma_meas^2 = <(g_A - g_B)^2> / 2 / R^2`` over galaxies and both components, with ``R``
the method's shear response from the shear test at the same level (``1 + m``, the mean over the
two components; AnaCal: its mean analytic response ``<R>`` on these galaxies, its estimates
``e / <R>``), so a method that shrinks is charged for the noise its calibration amplifies. The
reference is the bound of the same galaxies (those the method does not flag),
``sigma_CRLB^2 = <sigma_CRLB,i^2>``, and the
effective source density relative to a perfect estimator is

    n_eff / n = (1 - f_fail) (sigma_e^2 + sigma_CRLB^2) / (sigma_e^2 + sigma_meas^2)

for the population's shape noise ``sigma_e`` per component (the simulation's ``g_sigma``);
``f_fail`` is the fraction of galaxies the method flags in either realisation (a lost galaxy
is lost). Per-galaxy methods are scored on the galaxies they do not flag. The van Trees
(Bayesian) bound on the RMSE of any estimator given the population prior,
``(<1/sigma_CRLB,i^2> + 1/sigma_e^2)^(-1/2)``, is reported with its value without the prior's
term: their ratio is what a prior can buy a network trained with a squared loss (shrinking, it
can get below the CRLB in RMSE, never below van Trees); its calibrated noise (shrinkage undone)
is what the yardstick compares.

A method that predicts each galaxy's shear error (PSFNet's ``extra["sigma_g"]``) is also scored
as a survey would use it, with inverse-variance weights ``w_i = 1 / (sigma_e^2 + s_i^2)`` (``s_i``
its prediction, mean of the two realisations, over the response) on the weighted mean shear:

    n_eff,w / n = Var_ref / Var_w,   Var_w = sum_ok w_i^2 (sigma_e^2 + d_i^2) / (sum_ok w_i)^2,
    Var_ref = 1 / sum_all 1 / (sigma_e^2 + sigma_CRLB,i^2)

with ``d_i^2`` the galaxy's measured (calibrated) noise variance per component: the reference is a
perfect estimator weighted by the bound itself over every galaxy, so the weights are charged for
being wrong and a lost galaxy is lost. With equal errors and weights this is the unweighted formula.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shearbridge import study
from shearbridge.config import Profile, noise_tag
from shearbridge.estimators.base import usable
from shearbridge.io import read_json, write_json
from shearbridge.layout import Layout
from shearbridge.results import load_crlb

__all__ = [
    "neff_fraction",
    "weighted_neff_fraction",
    "van_trees_rmse",
    "yardstick_summary",
    "write_yardstick_summary",
]


def van_trees_rmse(crlb: np.ndarray, sigma_e: float | None) -> float:
    """The van Trees bound on the per-component RMSE over the population:
    ``(<F> + 1/sigma_e^2)^(-1/2)`` with ``F = 1/sigma_CRLB^2`` per galaxy and component and a
    Gaussian prior of width ``sigma_e`` (``None``: no prior, ``<F>^(-1/2)``; the ratio of the two is
    what the prior can buy)."""
    prior = 0.0 if sigma_e is None else 1.0 / sigma_e**2
    return float((np.mean(1.0 / np.asarray(crlb, np.float64) ** 2) + prior) ** -0.5)


def neff_fraction(sigma_meas: float, sigma_crlb: float, sigma_e: float, fail: float = 0.0) -> float:
    """``(1 - fail) (sigma_e^2 + sigma_CRLB^2) / (sigma_e^2 + sigma_meas^2)``."""
    return float((1.0 - fail) * (sigma_e**2 + sigma_crlb**2) / (sigma_e**2 + sigma_meas**2))


def weighted_neff_fraction(
    d2: np.ndarray, s2: np.ndarray, crlb2_all: np.ndarray, sigma_e: float
) -> float:
    """``n_eff,w / n`` (module docstring): ``d2``, ``s2`` the measured and predicted noise variances
    of the kept galaxies (per component), ``crlb2_all`` the bound's variance of every galaxy."""
    e2 = sigma_e**2
    w = 1.0 / (e2 + s2)
    var_w = float(np.sum(w**2 * (e2 + d2)) / np.sum(w) ** 2)
    var_ref = float(1.0 / np.sum(1.0 / (e2 + crlb2_all)))
    return var_ref / var_w


def _score(
    z: Any,
    response: float | None,
    crlb: np.ndarray,
    sigma_e: float,
    n_boot: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    ok = usable(z["g_a"], z["flags_a"], z.get("response_a")) & usable(
        z["g_b"], z["flags_b"], z.get("response_b")
    )
    if "response_a" in z:  # AnaCal: calibrate e by the mean analytic response of these galaxies
        response = float(np.mean(np.concatenate([z["response_a"][ok], z["response_b"][ok]])))
    if not response > 0:  # a response <= 0 cannot be calibrated (KSB at the lowest S/N)
        return {
            "response": float(response),
            "calibratable": False,
            "fail": 1.0 - float(np.mean(ok)),
            "n_used": int(np.sum(ok)),
        }
    d2 = (
        np.sum((z["g_a"][ok] - z["g_b"][ok]) ** 2, axis=1) / 4.0 / response**2
    )  # per galaxy, per component
    c2 = np.mean(crlb**2, axis=1)[ok]  # the bound of the galaxies the method measured
    fail = 1.0 - float(np.mean(ok))

    def stats(i_ok: np.ndarray) -> tuple[float, float]:
        return float(np.sqrt(np.mean(d2[i_ok]))), float(np.sqrt(np.mean(c2[i_ok])))

    s_meas, s_crlb = stats(np.arange(d2.size))
    neff = neff_fraction(s_meas, s_crlb, sigma_e, fail)
    c2_all = np.mean(crlb**2, axis=1)
    s2 = None
    if "sigma_g_a" in z:  # predicted per-galaxy errors (calibrated like the estimates)
        s2 = (0.5 * (z["sigma_g_a"][ok] + z["sigma_g_b"][ok]) / response) ** 2
        neff_w = weighted_neff_fraction(d2, s2, c2_all, sigma_e)
    boots, boots_w = [], []
    pos = np.cumsum(ok) - 1  # index into d2 of each usable galaxy
    for _ in range(n_boot):
        i = rng.integers(0, ok.size, ok.size)
        sel = np.flatnonzero(ok[i])
        if sel.size == 0:
            continue
        bm, bc = stats(pos[i[sel]])
        boots.append(
            (bm / bc, 100.0 * (1.0 - neff_fraction(bm, bc, sigma_e, 1.0 - sel.size / i.size)))
        )
        if s2 is not None:
            k = pos[i[sel]]
            boots_w.append(100.0 * (1.0 - weighted_neff_fraction(d2[k], s2[k], c2_all[i], sigma_e)))
    b = np.asarray(boots)
    out = {
        "calibratable": True,
        "sigma_meas": s_meas,
        "sigma_crlb": s_crlb,
        "meas_over_crlb": s_meas / s_crlb,
        "meas_over_crlb_err": float(np.std(b[:, 0])),
        "response": float(response),
        "fail": fail,
        "n_used": int(np.sum(ok)),
        "neff_fraction": neff,
        "neff_lost_pct": 100.0 * (1.0 - neff),
        "neff_lost_pct_err": float(np.std(b[:, 1])),
    }
    if s2 is not None:
        out |= {
            "neff_w_fraction": neff_w,
            "neff_w_lost_pct": 100.0 * (1.0 - neff_w),
            "neff_w_lost_pct_err": float(np.std(boots_w)),
        }
    return out


def yardstick_summary(profile: Profile, methods: list[str], sigma_e: float) -> dict[str, Any]:
    """Per method and level: sigma_meas / sigma_CRLB and n_eff lost (%, bootstrap errors over
    galaxies), with the response used, and the CRLB and van Trees bounds per level."""

    rng = np.random.default_rng(profile.seed)
    out: dict[str, Any] = {
        "profile": profile.name,
        "sigma_e": sigma_e,
        "methods": methods,
        "levels": {},
        "yardstick": {m: {} for m in methods},
    }
    for s in profile.noise_grid:
        tag = noise_tag(s)
        crlb = load_crlb(profile, s)
        out["levels"][tag] = {
            "sigma_crlb": float(np.sqrt(np.mean(crlb**2))),
            "van_trees": van_trees_rmse(crlb, sigma_e),
            "van_trees_no_prior": van_trees_rmse(crlb, None),
        }
        for m in (
            m for m in methods if m in study.at(profile, "bias_grid", s)
        ):  # those run at this level
            bias = read_json(Layout(profile).result("bias", m, s))
            response = None if "mean_response" in bias else 1.0 + 0.5 * (bias["m1"] + bias["m2"])
            with np.load(Layout(profile).result("yardstick", m, s, suffix=".npz")) as z:
                out["yardstick"][m][tag] = _score(
                    dict(z), response, crlb, sigma_e, profile.bootstrap, rng
                )
    return out


def write_yardstick_summary(profile: Profile, path) -> None:
    from shearbridge.config import SimConfig

    write_json(path, yardstick_summary(profile, study.names("bias_grid"), SimConfig().g_sigma))

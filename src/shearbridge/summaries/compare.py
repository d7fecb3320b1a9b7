"""The comparison and bias summaries: every method's results of the profile, in one dict."""

from __future__ import annotations

from typing import Any

import numpy as np

from shearbridge.config import LSST_C_REQUIREMENT, LSST_M_REQUIREMENT, Profile, noise_tag
from shearbridge.io import read_json
from shearbridge.steps.crlb import load_crlb_unit
from shearbridge.steps.measure import result_path

__all__ = ["CRLB_PERCENTILES", "load_result", "compare_summary", "bias_summary"]

CRLB_PERCENTILES = (16, 84)  # the band drawn around the bound in fig_rmse_vs_noise


def load_result(profile: Profile, method: str, sigma: float, kind: str = "compare") -> dict[str, Any]:
    return read_json(result_path(profile, method, sigma, kind))


def bias_summary(profile: Profile, methods: list[str]) -> dict[str, Any]:
    """m, c (and median S/N) of each method at every noise level of the grid (bias.json)."""
    return {"profile": profile.name, "methods": methods,
            "requirements": {"m": LSST_M_REQUIREMENT, "c": LSST_C_REQUIREMENT},
            "bias": {m: {noise_tag(s): load_result(profile, m, s, "bias") for s in profile.noise_grid}
                     for m in methods}}


def compare_summary(profile: Profile, methods: list[str], bias_noise: list[float]) -> dict[str, Any]:
    """All comparison and bias results of the profile, for the figure and number scripts."""
    crlb1, crlb_wall = load_crlb_unit(profile)
    out: dict[str, Any] = {"profile": profile.name, "methods": methods,
                           "crlb_unit": {"rms": float(np.sqrt(np.mean(crlb1 ** 2))),
                                         "median": float(np.median(crlb1)),
                                         "p16": float(np.percentile(crlb1, CRLB_PERCENTILES[0])),
                                         "p84": float(np.percentile(crlb1, CRLB_PERCENTILES[1])),
                                         "wall_s": crlb_wall},
                           "compare": {}, "bias": {}}
    for m in methods:
        out["compare"][m] = {noise_tag(s): load_result(profile, m, s) for s in profile.noise_grid}
        out["bias"][m] = {noise_tag(s): load_result(profile, m, s, "bias") for s in bias_noise}
    return out

"""The survey-scale shear test's summary: m, c, alpha per method and S/N, and what a target costs.

Reads ``results/survey.json`` (:func:`shearbridge.steps.survey.merge_survey`). For each method it
keeps the merged bias at each level, where it came from (the committed survey tier or the build's
in-hour tier) and its cost; :func:`cost_rows` turns each method's measured per-galaxy scatter of m
and its measured seconds per galaxy into the galaxies, stamps and core-hours a target sigma(m) asks
(:data:`TARGETS`: LSST's 1e-3 at survey S/N, 3e-4 at S/N ~ 200), and the wall time on 2 and on 100
cores (a chunk is the unit of parallel work: no faster than one chunk).
"""

from __future__ import annotations

import math
from typing import Any

from shearbridge.config import EUCLID_M_REQUIREMENT, LSST_C_REQUIREMENT, LSST_M_REQUIREMENT
from shearbridge.config.noise import SHEARNET_HIGH
from shearbridge.config.requirements import SIGMA_M_SURVEY_TEST_HIGH_SNR, SIGMA_M_TARGET_SURVEY
from shearbridge.config.survey import get_tier

__all__ = ["survey_summary", "target_sigma_m", "cost_rows", "CORES"]

#: The core counts of the cost table.
CORES = (2, 100)


def target_sigma_m(noise_sigma: float) -> float:
    """The sigma(m) the test asks at a level: 3e-4 at S/N ~ 200 (noise 1e-3), LSST's 1e-3 at
    survey S/N."""
    high = math.isclose(noise_sigma, SHEARNET_HIGH)
    return SIGMA_M_SURVEY_TEST_HIGH_SNR if high else SIGMA_M_TARGET_SURVEY


def survey_summary(results: dict[str, Any], profile_name: str) -> dict[str, Any]:
    """The summary the numbers read: the merged results and the requirements."""
    return {
        "profile": profile_name,
        "requirements": {
            "lsst_m": LSST_M_REQUIREMENT,
            "lsst_c": LSST_C_REQUIREMENT,
            "euclid_sigma_m": EUCLID_M_REQUIREMENT,
        },
        **results,
    }


def cost_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per method: the galaxies the targets ask (the largest over the levels; each level's
    ``n (sigma_m / target)^2``, with sigma_m the larger component's), its stamps, core-hours
    (measuring every level plus rendering), and wall hours on :data:`CORES` cores; ``galaxies``
    None where a level kept too few galaxies to measure the scatter."""
    survey = get_tier("survey")
    rows = []
    for key, m in summary["methods"].items():
        need: float | None = 0.0
        for lev in m["levels"].values():
            if lev["m1_err"] is None or lev["m2_err"] is None:
                need = None  # too few galaxies kept to measure the scatter
                break
            sigma_m = max(lev["m1_err"], lev["m2_err"])
            need = max(
                need, lev["n_galaxies"] * (sigma_m / target_sigma_m(lev["noise_sigma"])) ** 2
            )
        n_levels = len(m["levels"])
        per_galaxy = m["seconds_per_galaxy_level"] * n_levels + m["render_seconds_per_galaxy"]
        row = {
            "key": key,
            "label": m["label"],
            "galaxies": need,
            "per_galaxy_seconds": per_galaxy,
            "stamps_per_second": m["stamps_per_second"],
        }
        if need is not None:
            core_h = need * per_galaxy / 3600.0
            chunk_h = survey.chunk_galaxies * per_galaxy / 3600.0
            row.update(stamps=need * 16 * n_levels, core_hours=core_h)
            row.update({f"wall_hours_{c}": max(core_h / c, min(core_h, chunk_h)) for c in CORES})
        rows.append(row)
    return rows

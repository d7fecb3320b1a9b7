"""The population study's summary.

Seed averages of m, the targets counted, ranges as the text quotes them.
"""

from __future__ import annotations

import math

import pytest

from shearbridge.paper.outputs import fmt_range
from shearbridge.summaries.population import GROUPS, group_of, met_targets, seed_mean


def test_seed_mean_keeps_the_shared_noise_error_and_adds_the_seed_scatter():
    """Seeds measured on the same stamps share their noise: the error is the seeds' rms error (not
    over sqrt(n)) plus the seed variance over n in quadrature."""
    out = seed_mean(
        [
            {"m": 0.01, "m_err": 0.003, "c": 0.0, "c_err": 1e-4},
            {"m": 0.03, "m_err": 0.004, "c": 2e-4, "c_err": 1e-4},
        ]
    )
    assert out["m"] == pytest.approx(0.02)
    assert out["m_err"] == pytest.approx(math.sqrt((0.003**2 + 0.004**2) / 2 + 0.02**2 / 2 / 2))
    assert out["m_seed_sd"] == pytest.approx(math.sqrt(0.02**2 / 2))
    one = seed_mean([{"m": 0.01, "m_err": 0.003, "c": 0.0, "c_err": 1e-4}])
    assert one["m_err"] == pytest.approx(0.003) and one["m_seed_sd"] == 0.0


def _cell(galaxy, psf, sigma, snr, ratio, pull):
    row = {
        "galaxy": galaxy,
        "psf": psf,
        "noise_sigma": sigma,
        "snr_median": snr,
        "methods": {"psfnet": {"ratio": ratio, "pull": pull}},
    }
    row["group"] = group_of(row, {"galaxy": "bulge_disk", "psf": "kolmogorov"})
    return row


def test_targets_count_in_distribution_cells_above_the_snr_cut_with_lowest_level_allowed_three():
    cells = [
        _cell("exp", "moffat", 1e-4, 2000, 2.5, 1.00),  # lowest level: <= 3 passes
        _cell("exp", "moffat", 1e-3, 210, 2.5, 1.04),  # <= 2 needed: fails
        _cell("exp", "moffat", 1e-2, 21, 9.0, 0.90),  # below S/N 200: not counted; pull fails
        _cell("bulge_disk", "moffat", 1e-4, 2000, 9.0, 1.2),
    ]  # held out: not counted; pull fails
    assert met_targets(cells) == {"ratio": (1, 2), "pull": (2, 4)}
    assert [sum(c["group"] == g for c in cells) for g in GROUPS] == [3, 1, 0, 0]


def test_ranges_quote_the_lowest_and_highest_each_with_its_error():
    assert (
        fmt_range([(2.3, 0.1), (1.65, 0.06), (1.9, 0.05)]) == "${1.65\\pm0.06}$ to ${2.3\\pm0.1}$"
    )
    assert fmt_range([(1.0, 0.02)]) == "${1.00\\pm0.02}$"
    assert fmt_range([(33.0, None), (36.2, None)]) == "$33$ to $36$"
    assert fmt_range([]) == "none"


def test_the_learning_curve_joins_the_ends_of_complete_runs_over_in_distribution_cells_only():
    """The complete runs of the first seed, shortest first; the validation ratio is the root of half
    the mean squared error over the bound (two components); the cell ratio is the geometric mean
    over the in-distribution cells of a level, a held-out cell left out."""
    from shearbridge.summaries.population import learning_curve

    def row(galaxy, ratios):
        return {
            "galaxy": galaxy,
            "psf": "moffat",
            "noise_sigma": 1e-3,
            "methods": {k: {"ratio": r, "ratio_err": 0.1 * r} for k, r in ratios.items()},
        }

    hist = {
        "seed0": {"steps": 8, "step": [4, 8], "val_point": [8.0, 2.0]},
        "seed1": {"steps": 8, "step": [4, 8], "val_point": [9.0, 3.0]},
        "abl_steps_50": {"steps": 4, "step": [4], "val_point": [4.5]},
        "abl_plain_mse": {"steps": 8, "step": [8], "val_point": [50.0]},
    }
    result = {
        "seeds": [0, 1],
        "cell_noise": [1e-3],
        "held_out": {"galaxy": "bulge_disk", "psf": "kolmogorov"},
        "histories": hist,
        "cells": [
            row("exp", {"seed0": 1.0, "abl_steps_50": 2.0}),
            row("gauss", {"seed0": 4.0, "abl_steps_50": 2.0}),
            row("bulge_disk", {"seed0": 100.0, "abl_steps_50": 100.0}),
        ],
    }
    out = learning_curve(result)
    assert out["runs"] == ["abl_steps_50", "seed0"] and out["steps"] == [4, 8]
    assert out["val_ratio"] == pytest.approx([1.5, 1.0])
    assert out["cell_ratio"] == [pytest.approx([2.0, 2.0])]
    assert out["cell_ratio_err"][0][0] == pytest.approx(2.0 * math.sqrt(2 * 0.1**2) / 2)
    assert set(out["curves"]) == {"seed0", "seed1", "abl_steps_50"}  # not the other ablations
    assert learning_curve({**result, "histories": {}}) == {}

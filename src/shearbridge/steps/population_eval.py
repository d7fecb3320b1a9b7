"""The population study's evaluation: the cell table and each cell's shear test.

:func:`evaluate_population`: for every galaxy family x PSF family cell (held-out ones included),
``n_cell`` new galaxies with their exact bounds
(:func:`shearbridge.stats.crlb_population.population_crlb`: autodiff where the JAX renderer has
the profile, GalSim finite differences otherwise), each noise level with its own noise; RMSE/CRLB,
the robust ratio, the pull width of the predicted uncertainty, and the network's gain over the
moments-only estimator, each with a bootstrap error (and the scatter over seeds); and each cell's
shear test
(:func:`shearbridge.steps.population_sets.shear_cell_set`): m and c of each seed and of the
moments-only estimator, with jackknife errors, raw and (at the plan's ``metacal_noise``)
calibrated by metacalibration. The registry's ``population`` methods measure the cells, its
``population_shear`` methods the shear tests (:mod:`shearbridge.steps.population_methods`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shearbridge.config import Profile
from shearbridge.config.population import PopulationPlan, population_plan
from shearbridge.config.seeds import rng as seeded_rng
from shearbridge.io import read_json, write_json
from shearbridge.layout import Layout
from shearbridge.runs import population_network
from shearbridge.stats.cells import REFERENCE, SEED_PREFIX
from shearbridge.steps.population_methods import cell_results, population_estimators, shear_results
from shearbridge.steps.population_sets import cell_set, shear_cell_set

__all__ = ["evaluate_population"]


def _shear_bias(
    profile: Profile, plan: PopulationPlan, nets: dict[str, Any]
) -> list[dict[str, Any]]:
    """m and c of the network's seeds and the moments-only estimator (``nets``) and of the
    registry's ``population_shear`` methods in every cell's shear test, at each of ``shear_noise``:
    one noise field per galaxy and orientation, added with both signs (antithetic)."""
    from shearbridge.stats.bias import paired_shear_bias

    cfg, out = plan.population, []
    ests = {s: population_estimators(profile, s, "population_shear") for s in plan.shear_noise}
    for gi, galaxy in enumerate(cfg.galaxy_families):
        for pi, psf in enumerate(cfg.psf_families):
            cell = shear_cell_set(profile, plan, galaxy, psf)
            labels = {
                k: cell[k]
                for k in ("applied_g1", "applied_g2", "pair_id", "orient", "sign", "noise_sign")
            }
            field_id = cell["pair_id"] * 4 + cell["orient"]
            for li, sigma in enumerate(plan.shear_noise):
                fields = seeded_rng(
                    profile.seed, "population_shear_noise", gi, pi, li
                ).standard_normal((plan.n_shear * 4,) + cell["stamps"].shape[1:], dtype=np.float32)
                x = cell["stamps"] + fields[field_id] * (
                    cell["noise_sign"][:, None, None] * np.float32(sigma)
                )
                bias = {
                    name: paired_shear_bias(est.predict(x, cell["psfs"], sigma)[:, :2], labels)
                    for name, est in nets.items()
                }
                bias.update(
                    shear_results(ests[sigma], cell, labels, x, sigma, cfg.sim.pixel_scale_arcsec)
                )
                row = {
                    "galaxy": galaxy,
                    "psf": psf,
                    "noise_sigma": sigma,
                    "bias": bias,
                    "held_out": galaxy == cfg.held_out_galaxy or psf == cfg.held_out_psf,
                }
                if any(math.isclose(sigma, s) for s in plan.metacal_noise):
                    fix = seeded_rng(
                        profile.seed, "population_metacal_noise", gi, pi, li
                    ).standard_normal(fields.shape, dtype=np.float32)[field_id] * (
                        cell["noise_sign"][:, None, None] * sigma
                    )
                    row["metacal"] = _metacal_bias(x, cell, labels, fix, sigma, nets)
                out.append(row)
    return out


def _metacal_bias(
    x: np.ndarray,
    cell: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    fix: np.ndarray,
    sigma: float,
    nets: dict[str, Any],
) -> dict[str, Any]:
    """m and c of each network calibrated by metacalibration on one cell's shear test: each galaxy's
    stamps deconvolved by its own PSF, sheared by +-step along its shear component, reconvolved by a
    round Gaussian the network is told (:func:`shearbridge.stats.metacal_fourier.metacal_by_psf`,
    with the correlated-noise fix ``fix``, so the noise sigma told is ``sqrt(2) sigma``)."""
    from shearbridge.stats.bias import WILD_RESPONSE, paired_metacal_bias
    from shearbridge.stats.metacal_fourier import METACAL_STEP, metacal_by_psf

    comp = labels["pair_id"].astype(np.int64) % 2 + 1
    sets = metacal_by_psf(
        x, cell["psfs"], labels["pair_id"], comp, step=METACAL_STEP, fix_noise=fix
    )
    noshear, plus, minus, psf_r = (a.astype(np.float32) for a in sets)
    told, idx = sigma * math.sqrt(2.0), np.arange(len(x))
    out = {}
    for name, est in nets.items():
        g0, gp, gm = (est.predict(a, psf_r, told)[:, :2] for a in (noshear, plus, minus))
        response = (gp[idx, comp - 1] - gm[idx, comp - 1]) / (2.0 * METACAL_STEP)
        out[name] = {
            **paired_metacal_bias(g0, response, labels),
            "mean_response": float(np.mean(response)),
            "median_response": float(np.median(response)),
            "wild_response_fraction": float(np.mean(np.abs(response) > WILD_RESPONSE)),
        }
    return out


def evaluate_population(profile: Profile) -> dict[str, Any]:
    """The cell table (module docstring), written to ``results/population.json`` and returned."""
    from shearbridge.estimators.network import PSFNetEstimator
    from shearbridge.stats.cells import cell_metrics

    plan = population_plan(profile)
    cfg = plan.population

    def entry(name: str) -> PSFNetEstimator:
        return PSFNetEstimator(
            *population_network(profile, name), name=f"psfnet {name}", batch_size=256
        )

    nets = {REFERENCE: entry(REFERENCE)}
    for name, _, _ in plan.entries():
        nets[f"{SEED_PREFIX}{name}" if name[0].isdigit() else name] = entry(name)
    cells, ests = [], {s: population_estimators(profile, s, "population") for s in plan.cell_noise}
    for gi, galaxy in enumerate(cfg.galaxy_families):
        for pi, psf in enumerate(cfg.psf_families):
            cell = cell_set(profile, plan, galaxy, psf)
            for li, sigma in enumerate(plan.cell_noise):
                noise_rng = seeded_rng(profile.seed, "population_noise", gi, pi, li)
                noise = noise_rng.standard_normal(cell["stamps"].shape, dtype=np.float32)
                x = cell["stamps"] + noise * np.float32(sigma)
                preds = {name: est.predict(x, cell["psfs"], sigma) for name, est in nets.items()}
                truth = np.stack([cell["g1"], cell["g2"]], axis=1)
                rng = seeded_rng(profile.seed, "population_bootstrap", gi, pi, li)
                row = cell_metrics(
                    preds,
                    truth,
                    cell["bounds"] * sigma,
                    cell["stamps"],
                    sigma,
                    rng,
                    profile.bootstrap,
                )
                row["methods"].update(
                    cell_results(
                        profile, ests[sigma], cell, x, sigma, cfg.sim.pixel_scale_arcsec, rng
                    )
                )
                cells.append(
                    {
                        "galaxy": galaxy,
                        "psf": psf,
                        "noise_sigma": sigma,
                        "held_out": galaxy == cfg.held_out_galaxy or psf == cfg.held_out_psf,
                        **row,
                    }
                )
    training = read_json(Layout(profile).population("training.json"))
    runs = {
        **{f"{SEED_PREFIX}{k}": h for k, h in training["seeds"].items()},
        **{f"abl_{k}": h for k, h in training.get("ablations", {}).items()},
    }  # their validation curves
    shear_nets = {
        k: v for k, v in nets.items() if k == REFERENCE or k.startswith(SEED_PREFIX)
    }  # not the ablations
    out = {
        "cells": cells,
        "shear_cells": _shear_bias(profile, plan, shear_nets),
        "seeds": list(plan.seeds),
        "n_cell": plan.n_cell,
        "cell_noise": list(plan.cell_noise),
        "n_shear": plan.n_shear,
        "shear_noise": list(plan.shear_noise),
        "metacal_noise": list(plan.metacal_noise),
        "held_out": {"galaxy": cfg.held_out_galaxy, "psf": cfg.held_out_psf},
        "training_seconds": {s: h["train_seconds"] for s, h in training["seeds"].items()},
        "ablation_seconds": {
            s: h["train_seconds"] for s, h in training.get("ablations", {}).items()
        },
        "steps": plan.fresh.steps,
        "batch_size": plan.fresh.batch_size,
        "n_train": plan.n_train,
        "histories": {
            k: {"steps": h["config"]["steps"], "step": h["step"], "val_point": h["val_point"]}
            for k, h in runs.items()
        },
    }
    write_json(Layout(profile).population_results(), out)
    return out

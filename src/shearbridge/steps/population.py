"""The population study: one PSF- and noise-aware network, trained once, measured cell by cell.

Three pipeline steps (the only code here that reads or writes files, under ``src/data/<profile>/``;
:func:`prepare_sets` renders and bounds the evaluation's cells and shear tests ahead, beside the trainings):

* :func:`train_population`: draws the training and validation galaxies from the training
  families only (:func:`shearbridge.sim.population.training_families`: the held-out galaxy and PSF
  families never enter), renders them noise-free with their PSF images, computes each one's
  bound at unit noise, and trains :class:`~shearbridge.models.psfnet.PSFNet` with fresh noise
  (:func:`shearbridge.train.fresh.train_fresh`) once per seed of the plan. The parameters after
  :meth:`~shearbridge.models.psfnet.PSFNet.data_init` of the first seed are kept too: they are the
  *moments-only estimator with each stamp's own PSF* (the analytic shears, one least-squares scale
  per moment weight), the thing the network must beat.
* :func:`evaluate_population`: for every galaxy family x PSF family cell (held-out ones included),
  ``n_cell`` new galaxies with their exact bounds (:func:`shearbridge.stats.crlb_population.population_crlb`:
  autodiff where the JAX renderer has the profile, GalSim finite differences otherwise), each noise
  level with its own noise; RMSE/CRLB, the robust ratio, the pull width of the predicted
  uncertainty, and the network's gain over the moments-only estimator, each with a bootstrap error
  (and the scatter over seeds); and each cell's shear test (:func:`shear_cell_set`): m and c of each
  seed and of the moments-only estimator, with jackknife errors, raw and (at the plan's
  ``metacal_noise``) calibrated by metacalibration. The registry's ``population`` methods measure the
  cells, its ``population_shear`` methods the shear tests (:mod:`shearbridge.steps.population_methods`).

Training bounds: a Sersic training galaxy's weight uses the bound of an exponential of the same
size, shape and flux (autodiff, 1,000 times cheaper than finite differences of GalSim); the weight
only has to set each stamp's scale. The evaluation's bounds are exact for every family.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import paths
from shearbridge.config import Profile, config_hash
from shearbridge.config.population import PopulationPlan, population_plan
from shearbridge.config.seeds import rng as seeded_rng
from shearbridge.io import read_json, save_npz, write_json
from shearbridge.sim.population import (
    GALAXY_FAMILIES,
    POPULATION_LABELS,
    PSF_FAMILIES,
    PopulationConfig,
    draw_population,
    render_population,
    training_families,
)
from shearbridge.stats.cells import REFERENCE, SEED_PREFIX
from shearbridge.steps.measure import population_network, population_network_path, progress_bar
from shearbridge.steps.population_methods import cell_results, population_estimators, shear_results

__all__ = ["clean_set", "cell_set", "shear_cell_set", "prepare_sets", "train_population", "evaluate_population",
           "code_version", "SPLITS", "TRAINED_BY"]

SPLITS = {"train": 0, "val": 1}
_FD_FAMILIES = ("sersic", "bulge_disk")


def _chunks(n: int, parts: int) -> list[slice]:
    edges = np.linspace(0, n, parts + 1).astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _fd_part(cfg: PopulationConfig, part: dict[str, np.ndarray]) -> np.ndarray:
    from shearbridge.stats.crlb_population import population_crlb

    return population_crlb(cfg, part)


def _parallel(fn, cfg: PopulationConfig, labels: dict[str, np.ndarray], workers: int) -> list[Any]:
    """``fn(cfg, part)`` over contiguous parts of the rows, in order, in ``workers`` forked processes
    (GalSim and NumPy only: the children never run JAX)."""
    n = len(labels["g1"])
    parts = [{k: v[s] for k, v in labels.items()} for s in _chunks(n, max(1, min(n, 8 * workers)))]
    if workers == 1:
        return [fn(cfg, p) for p in parts]
    with warnings.catch_warnings():  # JAX warns of any fork once it runs; these children never call it
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(fn, [cfg] * len(parts), parts))


def _workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _render(cfg: PopulationConfig, labels: dict[str, np.ndarray], desc: str) -> tuple[np.ndarray, np.ndarray]:
    with progress_bar(len(labels["g1"]), desc):
        out = _parallel(render_population, cfg, labels, _workers())
    return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])


def _bounds(cfg: PopulationConfig, labels: dict[str, np.ndarray], *, exact: bool) -> np.ndarray:
    """Unit-noise bounds ``(N, 2)`` on g1, g2: autodiff rows in this process, finite-difference rows
    (``exact``) in forked workers; without ``exact``, Sersic and bulge+disk rows get the bound of an
    exponential of the same size, shape and flux (module docstring)."""
    from shearbridge.stats.crlb_population import population_crlb

    labels = {k: np.asarray(v).copy() for k, v in labels.items()}
    fd = np.isin(labels["galaxy_id"], [GALAXY_FAMILIES.index(f) for f in _FD_FAMILIES])
    if not exact:
        labels["galaxy_id"][fd] = GALAXY_FAMILIES.index("exp")
        fd[:] = False
    out = np.empty((len(fd), 2))
    if (~fd).any():
        out[~fd] = population_crlb(cfg, {k: v[~fd] for k, v in labels.items()})[:, 4:6]
    if fd.any():
        with progress_bar(int(fd.sum()), "finite-difference bounds", unit="galaxy"):
            parts = _parallel(_fd_part, cfg, {k: v[fd] for k, v in labels.items()}, _workers())
        out[fd] = np.concatenate(parts)[:, 4:6]
    return out


def _spec(profile: Profile, plan: PopulationPlan, *what: Any) -> str:
    """The hash a cached set is stored with: the population, the profile's root seed and ``what``
    (its kind and size); a set stored under another hash is drawn again."""
    return config_hash(plan.population, profile.seed, *what)


def _fresh_cache(path: Path, spec: str) -> bool:
    """Whether ``path`` holds a set made from ``spec``."""
    if not path.exists():
        return False
    with np.load(path) as data:
        return "spec" in data.files and str(data["spec"]) == spec


def _cached(profile: Profile, plan: PopulationPlan, name: str, what: tuple[Any, ...],
            make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays of ``population/<name>.npz``, made by ``make()`` and stored with the :func:`_spec` of
    ``what`` unless the file already holds them for that spec."""
    path = paths.population_dir(profile) / f"{name}.npz"
    spec = _spec(profile, plan, *what)
    if not _fresh_cache(path, spec):
        save_npz(path, spec=np.array(spec), **make())
    return dict(np.load(path))


def _cell_labels(profile: Profile, plan: PopulationPlan, stream: str, galaxy: str, psf: str,
                 n: int) -> dict[str, np.ndarray]:
    """``n`` galaxies of one family seen through one PSF family, from ``stream`` keyed by the cell."""
    key = (GALAXY_FAMILIES.index(galaxy), PSF_FAMILIES.index(psf))
    return draw_population(plan.population, n, seeded_rng(profile.seed, stream, *key), galaxies=[galaxy],
                           psfs=[psf])


def clean_set(profile: Profile, plan: PopulationPlan, split: str) -> tuple[dict[str, np.ndarray], Any]:
    """The noise-free training or validation galaxies (training families only), cached:
    ``(labels, CleanSet)``."""
    from shearbridge.train.fresh import CleanSet

    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    n = plan.n_train if split == "train" else plan.n_val

    def make() -> dict[str, np.ndarray]:
        cfg = plan.population
        galaxies, psfs = training_families(cfg)
        labels = draw_population(cfg, n, seeded_rng(profile.seed, "population_galaxies", SPLITS[split]),
                                 galaxies=galaxies, psfs=psfs)
        stamps, psf_images = _render(cfg, labels, f"{split} galaxies")
        return {"stamps": stamps, "psfs": psf_images, "c": _bounds(cfg, labels, exact=False).mean(axis=1), **labels}

    data = _cached(profile, plan, f"clean_{split}", (split, n), make)
    labels = {k: data[k] for k in POPULATION_LABELS}
    g = np.stack([labels["g1"], labels["g2"]], axis=1).astype(np.float32)
    return labels, CleanSet(data["stamps"], data["psfs"], g, data["c"].astype(np.float32))


def cell_set(profile: Profile, plan: PopulationPlan, galaxy: str, psf: str) -> dict[str, np.ndarray]:
    """The test galaxies of one cell, cached: labels, ``stamps``, ``psfs`` and exact unit-noise
    ``bounds (N, 2)``."""
    def make() -> dict[str, np.ndarray]:
        labels = _cell_labels(profile, plan, "population_cells", galaxy, psf, plan.n_cell)
        stamps, psfs = _render(plan.population, labels, f"cell {galaxy} x {psf}")
        return {"stamps": stamps, "psfs": psfs, "bounds": _bounds(plan.population, labels, exact=True), **labels}

    return _cached(profile, plan, f"cell_{galaxy}_{psf}", ("cell", galaxy, psf, plan.n_cell), make)


def shear_cell_set(profile: Profile, plan: PopulationPlan, galaxy: str, psf: str) -> dict[str, np.ndarray]:
    """One cell's shear test, cached: ``n_shear`` new galaxies, each as 16 stamps (four orientations
    45 degrees apart x shear +-0.02 along component ``pair_id % 2`` x noise +-n, the layout of
    :func:`shearbridge.sim.stamps.expand_shear_test`; each stamp is the lensed shape, the PSF stays put);
    labels, ``stamps`` (noise-free) and ``psfs``."""
    from shearbridge.config import SimConfig
    from shearbridge.sim.stamps import expand_shear_test

    def make() -> dict[str, np.ndarray]:
        base = _cell_labels(profile, plan, "population_shear", galaxy, psf, plan.n_shear)
        labels = expand_shear_test(SimConfig(applied_shear=0.02), base)
        plus = np.flatnonzero(labels["noise_sign"] > 0)  # a -n stamp is its +n neighbour's image
        stamps, psfs = _render(plan.population, {k: v[plus] for k, v in labels.items()},
                               f"shear test {galaxy} x {psf}")
        return {"stamps": np.repeat(stamps, 2, axis=0), "psfs": np.repeat(psfs, 2, axis=0), **labels}

    return _cached(profile, plan, f"shear_{galaxy}_{psf}", ("shear", galaxy, psf, plan.n_shear), make)


def prepare_sets(profile: Profile) -> dict[str, Any]:
    """Render (and bound) every cell's test galaxies and shear test, cached, before any network is trained
    (the pipeline runs it beside the trainings); writes ``population/sets.json`` (each file's spec)."""
    plan = population_plan(profile)
    t0, record = time.perf_counter(), {}
    for galaxy in plan.population.galaxy_families:
        for psf in plan.population.psf_families:
            for name, make in ((f"cell_{galaxy}_{psf}", cell_set), (f"shear_{galaxy}_{psf}", shear_cell_set)):
                record[name] = str(make(profile, plan, galaxy, psf)["spec"])
    out = {"sets": record, "seconds": time.perf_counter() - t0}
    write_json(paths.population_dir(profile) / "sets.json", out)
    return out


def _shear_bias(profile: Profile, plan: PopulationPlan, nets: dict[str, Any]) -> list[dict[str, Any]]:
    """m and c of the network's seeds and the moments-only estimator (``nets``) and of the registry's
    ``population_shear`` methods in every cell's shear test, at each of ``shear_noise``: one noise field
    per galaxy and orientation, added with both signs (antithetic)."""
    from shearbridge.stats.bias import paired_shear_bias

    cfg, out = plan.population, []
    ests = {s: population_estimators(profile, s, "population_shear") for s in plan.shear_noise}
    for gi, galaxy in enumerate(cfg.galaxy_families):
        for pi, psf in enumerate(cfg.psf_families):
            cell = shear_cell_set(profile, plan, galaxy, psf)
            labels = {k: cell[k] for k in ("applied_g1", "applied_g2", "pair_id", "orient", "sign", "noise_sign")}
            field_id = cell["pair_id"] * 4 + cell["orient"]
            for li, sigma in enumerate(plan.shear_noise):
                fields = seeded_rng(profile.seed, "population_shear_noise", gi, pi, li).standard_normal(
                    (plan.n_shear * 4,) + cell["stamps"].shape[1:], dtype=np.float32)
                x = cell["stamps"] + fields[field_id] * (cell["noise_sign"][:, None, None] * np.float32(sigma))
                bias = {name: paired_shear_bias(est.predict(x, cell["psfs"], sigma)[:, :2], labels)
                        for name, est in nets.items()}
                bias.update(shear_results(ests[sigma], cell, labels, x, sigma, cfg.sim.pixel_scale_arcsec))
                row = {"galaxy": galaxy, "psf": psf, "noise_sigma": sigma, "bias": bias,
                       "held_out": galaxy == cfg.held_out_galaxy or psf == cfg.held_out_psf}
                if any(math.isclose(sigma, s) for s in plan.metacal_noise):
                    fix = seeded_rng(profile.seed, "population_metacal_noise", gi, pi, li).standard_normal(
                        fields.shape, dtype=np.float32)[field_id] * (cell["noise_sign"][:, None, None] * sigma)
                    row["metacal"] = _metacal_bias(x, cell, labels, fix, sigma, nets)
                out.append(row)
    return out


def _metacal_bias(x: np.ndarray, cell: dict[str, np.ndarray], labels: dict[str, np.ndarray], fix: np.ndarray,
                  sigma: float, nets: dict[str, Any]) -> dict[str, Any]:
    """m and c of each network calibrated by metacalibration on one cell's shear test: each galaxy's
    stamps deconvolved by its own PSF, sheared by +-step along its shear component, reconvolved by a
    round Gaussian the network is told (:func:`shearbridge.stats.metacal_fourier.metacal_by_psf`, with
    the correlated-noise fix ``fix``, so the noise sigma told is ``sqrt(2) sigma``)."""
    from shearbridge.stats.bias import paired_metacal_bias
    from shearbridge.stats.metacal_fourier import METACAL_STEP, metacal_by_psf
    from shearbridge.steps.metacal import WILD_RESPONSE

    comp = labels["pair_id"].astype(np.int64) % 2 + 1
    sets = metacal_by_psf(x, cell["psfs"], labels["pair_id"], comp, step=METACAL_STEP, fix_noise=fix)
    noshear, plus, minus, psf_r = (a.astype(np.float32) for a in sets)
    told, idx = sigma * math.sqrt(2.0), np.arange(len(x))
    out = {}
    for name, est in nets.items():
        g0, gp, gm = (est.predict(a, psf_r, told)[:, :2] for a in (noshear, plus, minus))
        response = (gp[idx, comp - 1] - gm[idx, comp - 1]) / (2.0 * METACAL_STEP)
        out[name] = {**paired_metacal_bias(g0, response, labels), "mean_response": float(np.mean(response)),
                     "median_response": float(np.median(response)),
                     "wild_response_fraction": float(np.mean(np.abs(response) > WILD_RESPONSE))}
    return out


def train_population(profile: Profile) -> dict[str, Any]:
    """Train every network of the plan (:meth:`~shearbridge.config.population.PopulationPlan.entries`;
    module docstring); writes the parameters and ``training.json`` (histories, seconds) and returns
    that record. An entry whose parameters exist and whose recorded configuration and training
    galaxies are the plan's, trained by this code (:func:`code_version`), is kept (a stopped run continues)."""
    import jax
    from flax import serialization

    from shearbridge.io import atomic_path
    from shearbridge.models.psfnet import PSFNet
    from shearbridge.train.fresh import noisy_copy, train_fresh

    plan = population_plan(profile)
    t0 = time.perf_counter()
    _, train = clean_set(profile, plan, "train")
    _, val = clean_set(profile, plan, "val")
    record_path = paths.population_dir(profile) / "training.json"
    old = read_json(record_path) if record_path.exists() else {}
    data = _spec(profile, plan, "train", plan.n_train) + _spec(profile, plan, "val", plan.n_val)
    code = code_version()
    if old.get("data") != data or old.get("code") != code:  # other galaxies or other model code: retrain
        old = {}
    record = {"prepare_seconds": time.perf_counter() - t0, "n_train": len(train), "n_val": len(val),
              "data": data, "code": code, "seeds": {}, "ablations": {}}
    for name, cfg, kwargs in plan.entries():
        group = "ablations" if name.startswith("abl_") else "seeds"
        key_name = name[len("abl_"):] if group == "ablations" else name
        done = old.get(group, {}).get(key_name, {})
        path = population_network_path(profile, name)
        if (path.exists() and done.get("config") == json_ready(dataclasses.asdict(cfg))
                and done.get("model", {}) == json_ready(kwargs)):
            record[group][key_name] = done
            continue
        model = PSFNet(**kwargs)
        key = jax.random.PRNGKey(10_000 + cfg.seed)
        x, sigma = noisy_copy(train, key, plan.fresh.noise_min, plan.fresh.noise_max)
        params = model.data_init(model.init(key, x[:2], train.psfs[:2], sigma[:2]), x, train.psfs, sigma, train.g)
        if name == str(plan.seeds[0]):
            with atomic_path(population_network_path(profile, "moments")) as tmp:
                tmp.write_bytes(serialization.to_bytes(params))
        t1 = time.perf_counter()
        with progress_bar(cfg.steps, f"PSFNet {name}", unit="step") as bar:
            params, hist = train_fresh(model, params, train, val, cfg, progress=bar.update)
        hist["train_seconds"] = time.perf_counter() - t1
        hist["model"] = json_ready(kwargs)
        with atomic_path(population_network_path(profile, name)) as tmp:
            tmp.write_bytes(serialization.to_bytes(params))
        record[group][key_name] = json_ready(hist)
        write_json(record_path, record)  # after every entry: a stopped run keeps what it finished
    write_json(record_path, record)
    return record


#: The modules whose code decides what a trained entry is: a change to any of them retrains.
TRAINED_BY = ("shearbridge.models.psfnet", "shearbridge.models.moments", "shearbridge.models.shapenet",
              "shearbridge.train.fresh", "shearbridge.train.augment")


def code_version() -> str:
    """A hash of the source files of :data:`TRAINED_BY` (``training.json`` keeps it; a resumed ``train``
    keeps no network trained by other code)."""
    import hashlib
    import importlib.util

    digest = hashlib.sha256()
    for name in TRAINED_BY:
        spec = importlib.util.find_spec(name)
        digest.update(Path(spec.origin).read_bytes() if spec is not None and spec.origin else name.encode())
    return digest.hexdigest()[:16]


def json_ready(obj: Any) -> Any:
    """``obj`` as JSON reads it back (tuples as lists), so a stored configuration compares equal."""
    return json.loads(json.dumps(obj, default=str))


def evaluate_population(profile: Profile) -> dict[str, Any]:
    """The cell table (module docstring), written to ``results/population.json`` and returned."""
    from shearbridge.estimators.network import PSFNetEstimator
    from shearbridge.stats.cells import cell_metrics

    plan = population_plan(profile)
    cfg = plan.population

    def entry(name: str) -> PSFNetEstimator:
        return PSFNetEstimator(*population_network(profile, name), name=f"psfnet {name}", batch_size=256)

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
                row = cell_metrics(preds, truth, cell["bounds"] * sigma, cell["stamps"], sigma, rng, profile.bootstrap)
                row["methods"].update(cell_results(profile, ests[sigma], cell, x, sigma, cfg.sim.pixel_scale_arcsec,
                                                   rng))
                cells.append({"galaxy": galaxy, "psf": psf, "noise_sigma": sigma,
                              "held_out": galaxy == cfg.held_out_galaxy or psf == cfg.held_out_psf, **row})
    training = read_json(paths.population_dir(profile) / "training.json")
    runs = {**{f"{SEED_PREFIX}{k}": h for k, h in training["seeds"].items()},
            **{f"abl_{k}": h for k, h in training.get("ablations", {}).items()}}  # their validation curves
    shear_nets = {k: v for k, v in nets.items() if k == REFERENCE or k.startswith(SEED_PREFIX)}  # not the ablations
    out = {"cells": cells, "shear_cells": _shear_bias(profile, plan, shear_nets), "seeds": list(plan.seeds),
           "n_cell": plan.n_cell, "cell_noise": list(plan.cell_noise), "n_shear": plan.n_shear,
           "shear_noise": list(plan.shear_noise), "metacal_noise": list(plan.metacal_noise),
           "held_out": {"galaxy": cfg.held_out_galaxy, "psf": cfg.held_out_psf},
           "training_seconds": {s: h["train_seconds"] for s, h in training["seeds"].items()},
           "ablation_seconds": {s: h["train_seconds"] for s, h in training.get("ablations", {}).items()},
           "steps": plan.fresh.steps, "batch_size": plan.fresh.batch_size, "n_train": plan.n_train,
           "histories": {k: {"steps": h["config"]["steps"], "step": h["step"], "val_point": h["val_point"]}
                         for k, h in runs.items()}}
    write_json(paths.results_dir(profile) / "population.json", out)
    return out

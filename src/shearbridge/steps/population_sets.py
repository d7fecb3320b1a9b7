"""The population study's sets: the training and validation galaxies, each cell's test galaxies and
each cell's shear test (the only code of the study that renders stamps).

Each set is drawn from its own seed stream, rendered with every stamp's own PSF (in forked GalSim
workers), bounded at unit noise where it needs a bound, and cached under
``src/data/<profile>/population/`` with the hash of what made it (:func:`set_spec`): a set stored
under another hash is drawn again. :func:`prepare_sets` renders and bounds the evaluation's cells
and shear tests ahead, beside the trainings (``python -m shearbridge population sets``).

Training bounds: a Sersic training galaxy's weight uses the bound of an exponential of the same
size, shape and flux (autodiff, 1,000 times cheaper than finite differences of GalSim); the weight
only has to set each stamp's scale. The evaluation's bounds are exact for every family.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge.config import Profile, config_hash
from shearbridge.config.population import PopulationPlan, population_plan
from shearbridge.config.seeds import rng as seeded_rng
from shearbridge.io import save_npz, write_json
from shearbridge.layout import Layout
from shearbridge.sim.population import (
    GALAXY_FAMILIES,
    POPULATION_LABELS,
    PSF_FAMILIES,
    PopulationConfig,
    draw_population,
    render_population,
    training_families,
)
from shearbridge.steps.measure import progress_bar

__all__ = ["SPLITS", "set_spec", "clean_set", "cell_set", "shear_cell_set", "prepare_sets"]


SPLITS = {"train": 0, "val": 1}
_FD_FAMILIES = ("sersic", "bulge_disk")


def _chunks(n: int, parts: int) -> list[slice]:
    edges = np.linspace(0, n, parts + 1).astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _fd_part(cfg: PopulationConfig, part: dict[str, np.ndarray]) -> np.ndarray:
    from shearbridge.stats.crlb_population import population_crlb

    return population_crlb(cfg, part)


def _parallel(fn, cfg: PopulationConfig, labels: dict[str, np.ndarray], workers: int) -> list[Any]:
    """``fn(cfg, part)`` over contiguous parts of the rows, in order, in ``workers`` forked
    processes (GalSim and NumPy only: the children never run JAX)."""
    n = len(labels["g1"])
    parts = [{k: v[s] for k, v in labels.items()} for s in _chunks(n, max(1, min(n, 8 * workers)))]
    if workers == 1:
        return [fn(cfg, p) for p in parts]
    with (
        warnings.catch_warnings()
    ):  # JAX warns of any fork once it runs; these children never call it
        warnings.filterwarnings(
            "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
        )
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("fork")
        ) as pool:
            return list(pool.map(fn, [cfg] * len(parts), parts))


def _workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _render(
    cfg: PopulationConfig, labels: dict[str, np.ndarray], desc: str
) -> tuple[np.ndarray, np.ndarray]:
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


def set_spec(profile: Profile, plan: PopulationPlan, *what: Any) -> str:
    """The hash a cached set is stored with: the population, the profile's root seed and ``what``
    (its kind and size); a set stored under another hash is drawn again."""
    return config_hash(plan.population, profile.seed, *what)


def _fresh_cache(path: Path, spec: str) -> bool:
    """Whether ``path`` holds a set made from ``spec``."""
    if not path.exists():
        return False
    with np.load(path) as data:
        return "spec" in data.files and str(data["spec"]) == spec


def _cached(
    profile: Profile,
    plan: PopulationPlan,
    name: str,
    what: tuple[Any, ...],
    make: Callable[[], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """The arrays of ``population/<name>.npz``, made by ``make()`` and stored with the
    :func:`set_spec` of ``what`` unless the file already holds them for that spec."""
    path = Layout(profile).population(f"{name}.npz")
    spec = set_spec(profile, plan, *what)
    if not _fresh_cache(path, spec):
        save_npz(path, spec=np.array(spec), **make())
    return dict(np.load(path))


def _cell_labels(
    profile: Profile, plan: PopulationPlan, stream: str, galaxy: str, psf: str, n: int
) -> dict[str, np.ndarray]:
    """``n`` galaxies of one family seen through one PSF family.

    They come from ``stream`` keyed by the cell.
    """
    key = (GALAXY_FAMILIES.index(galaxy), PSF_FAMILIES.index(psf))
    return draw_population(
        plan.population, n, seeded_rng(profile.seed, stream, *key), galaxies=[galaxy], psfs=[psf]
    )


def clean_set(
    profile: Profile, plan: PopulationPlan, split: str
) -> tuple[dict[str, np.ndarray], Any]:
    """The noise-free training or validation galaxies (training families only), cached:
    ``(labels, CleanSet)``."""
    from shearbridge.train.fresh import CleanSet

    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    n = plan.n_train if split == "train" else plan.n_val

    def make() -> dict[str, np.ndarray]:
        cfg = plan.population
        galaxies, psfs = training_families(cfg)
        labels = draw_population(
            cfg,
            n,
            seeded_rng(profile.seed, "population_galaxies", SPLITS[split]),
            galaxies=galaxies,
            psfs=psfs,
        )
        stamps, psf_images = _render(cfg, labels, f"{split} galaxies")
        return {
            "stamps": stamps,
            "psfs": psf_images,
            "c": _bounds(cfg, labels, exact=False).mean(axis=1),
            **labels,
        }

    data = _cached(profile, plan, f"clean_{split}", (split, n), make)
    labels = {k: data[k] for k in POPULATION_LABELS}
    g = np.stack([labels["g1"], labels["g2"]], axis=1).astype(np.float32)
    return labels, CleanSet(data["stamps"], data["psfs"], g, data["c"].astype(np.float32))


def cell_set(
    profile: Profile, plan: PopulationPlan, galaxy: str, psf: str
) -> dict[str, np.ndarray]:
    """The test galaxies of one cell, cached: labels, ``stamps``, ``psfs`` and exact unit-noise
    ``bounds (N, 2)``."""

    def make() -> dict[str, np.ndarray]:
        labels = _cell_labels(profile, plan, "population_cells", galaxy, psf, plan.n_cell)
        stamps, psfs = _render(plan.population, labels, f"cell {galaxy} x {psf}")
        return {
            "stamps": stamps,
            "psfs": psfs,
            "bounds": _bounds(plan.population, labels, exact=True),
            **labels,
        }

    return _cached(profile, plan, f"cell_{galaxy}_{psf}", ("cell", galaxy, psf, plan.n_cell), make)


def shear_cell_set(
    profile: Profile, plan: PopulationPlan, galaxy: str, psf: str
) -> dict[str, np.ndarray]:
    """One cell's shear test, cached: ``n_shear`` new galaxies, each as 16 stamps (four orientations
    45 degrees apart x shear +-0.02 along component ``pair_id % 2`` x noise +-n, the layout of
    :func:`shearbridge.sim.stamps.expand_shear_test`; each stamp is the lensed shape, the PSF stays
    put); labels, ``stamps`` (noise-free) and ``psfs``."""
    from shearbridge.config import SimConfig
    from shearbridge.sim.stamps import expand_shear_test

    def make() -> dict[str, np.ndarray]:
        base = _cell_labels(profile, plan, "population_shear", galaxy, psf, plan.n_shear)
        labels = expand_shear_test(SimConfig(applied_shear=0.02), base)
        plus = np.flatnonzero(labels["noise_sign"] > 0)  # a -n stamp is its +n neighbour's image
        stamps, psfs = _render(
            plan.population, {k: v[plus] for k, v in labels.items()}, f"shear test {galaxy} x {psf}"
        )
        return {
            "stamps": np.repeat(stamps, 2, axis=0),
            "psfs": np.repeat(psfs, 2, axis=0),
            **labels,
        }

    return _cached(
        profile, plan, f"shear_{galaxy}_{psf}", ("shear", galaxy, psf, plan.n_shear), make
    )


def prepare_sets(profile: Profile) -> dict[str, Any]:
    """Render (and bound) every cell's test galaxies and shear test, cached, before any network is
    trained (the pipeline runs it beside the trainings); writes ``population/sets.json`` (each
    file's spec)."""
    plan = population_plan(profile)
    t0, record = time.perf_counter(), {}
    for galaxy in plan.population.galaxy_families:
        for psf in plan.population.psf_families:
            for name, make in (
                (f"cell_{galaxy}_{psf}", cell_set),
                (f"shear_{galaxy}_{psf}", shear_cell_set),
            ):
                record[name] = str(make(profile, plan, galaxy, psf)["spec"])
    out = {"sets": record, "seconds": time.perf_counter() - t0}
    write_json(Layout(profile).population("sets.json"), out)
    return out

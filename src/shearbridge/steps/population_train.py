"""The population study's training: PSFNet trained once per seed and ablation of the plan.

:func:`train_population` draws the training and validation galaxies from the training families
only (:func:`shearbridge.sim.population.training_families`: the held-out galaxy and PSF families
never enter; :func:`shearbridge.steps.population_sets.clean_set`), renders them noise-free with
their PSF images, computes each one's bound at unit noise, and trains
:class:`~shearbridge.models.psfnet.PSFNet` with fresh noise
(:func:`shearbridge.train.fresh.train_fresh`) once per seed of the plan. The parameters after
:meth:`~shearbridge.models.psfnet.PSFNet.data_init` of the first seed are kept too: they are the
*moments-only estimator with each stamp's own PSF* (the analytic shears, one least-squares scale
per moment weight), the thing the network must beat. A finished entry trained on the same
galaxies by the same code (:data:`TRAINED_BY`) is kept: a stopped run continues.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from shearbridge.config import Profile
from shearbridge.config.population import population_plan
from shearbridge.io import read_json, write_json
from shearbridge.layout import Layout
from shearbridge.steps.measure import progress_bar
from shearbridge.steps.population_sets import clean_set, set_spec

__all__ = ["train_population", "train_entry", "initial_params", "code_version", "TRAINED_BY"]


def train_population(profile: Profile) -> dict[str, Any]:
    """Train every network of the plan
    (:meth:`~shearbridge.config.population.PopulationPlan.entries`; module docstring); writes the
    parameters and ``training.json`` (histories, seconds) and returns that record. An entry whose
    parameters exist and whose recorded configuration and training galaxies are the plan's, trained
    by this code (:func:`code_version`), is kept (a stopped run continues)."""
    from flax import serialization

    from shearbridge.io import atomic_path

    plan = population_plan(profile)
    t0 = time.perf_counter()
    _, train = clean_set(profile, plan, "train")
    _, val = clean_set(profile, plan, "val")
    record_path = Layout(profile).population("training.json")
    old = read_json(record_path) if record_path.exists() else {}
    data = set_spec(profile, plan, "train", plan.n_train) + set_spec(
        profile, plan, "val", plan.n_val
    )
    code = code_version()
    if (
        old.get("data") != data or old.get("code") != code
    ):  # other galaxies or other model code: retrain
        old = {}
    record = {
        "prepare_seconds": time.perf_counter() - t0,
        "n_train": len(train),
        "n_val": len(val),
        "data": data,
        "code": code,
        "seeds": {},
        "ablations": {},
    }
    for name, cfg, kwargs in plan.entries():
        group = "ablations" if name.startswith("abl_") else "seeds"
        key_name = name[len("abl_") :] if group == "ablations" else name
        done = old.get(group, {}).get(key_name, {})
        path = Layout(profile).population_network(name)
        if (
            path.exists()
            and done.get("config") == json_ready(dataclasses.asdict(cfg))
            and done.get("model", {}) == json_ready(kwargs)
        ):
            record[group][key_name] = done
            continue
        params = initial_params(plan, train, cfg, kwargs)
        if name == str(plan.seeds[0]):
            with atomic_path(Layout(profile).population_network("moments")) as tmp:
                tmp.write_bytes(serialization.to_bytes(params))
        params, hist = train_entry(plan, train, val, cfg, kwargs, f"PSFNet {name}", params)
        with atomic_path(Layout(profile).population_network(name)) as tmp:
            tmp.write_bytes(serialization.to_bytes(params))
        record[group][key_name] = json_ready(hist)
        write_json(record_path, record)  # after every entry: a stopped run keeps what it finished
    write_json(record_path, record)
    return record


def initial_params(plan: Any, train: Any, cfg: Any, kwargs: dict[str, Any]) -> Any:
    """PSFNet's parameters before training: initialised and :meth:`data_init`-ed on one noisy copy
    of the training galaxies drawn from the entry's seed (for the first seed: the moments-only
    estimator)."""
    import jax

    from shearbridge.models.psfnet import PSFNet
    from shearbridge.train.fresh import noisy_copy

    model = PSFNet(**kwargs)
    key = jax.random.PRNGKey(10_000 + cfg.seed)
    x, sigma = noisy_copy(train, key, plan.fresh.noise_min, plan.fresh.noise_max)
    return model.data_init(
        model.init(key, x[:2], train.psfs[:2], sigma[:2]), x, train.psfs, sigma, train.g
    )


def train_entry(
    plan: Any,
    train: Any,
    val: Any,
    cfg: Any,
    kwargs: dict[str, Any],
    label: str,
    params: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """One network of the plan: PSFNet(``kwargs``) from ``params`` (default
    :func:`initial_params`), trained by
    :func:`~shearbridge.train.fresh.train_fresh` with ``cfg``; ``(params, history)`` (the history
    with ``train_seconds`` and ``model``). A progress bar named ``label``."""
    from shearbridge.models.psfnet import PSFNet
    from shearbridge.train.fresh import train_fresh

    if params is None:
        params = initial_params(plan, train, cfg, kwargs)
    t1 = time.perf_counter()
    with progress_bar(cfg.steps, label, unit="step") as bar:
        params, hist = train_fresh(PSFNet(**kwargs), params, train, val, cfg, progress=bar.update)
    hist["train_seconds"] = time.perf_counter() - t1
    hist["model"] = json_ready(kwargs)
    return params, hist


#: The modules whose code decides what a trained entry is: a change to any of them retrains.
TRAINED_BY = (
    "shearbridge.models.psfnet",
    "shearbridge.models.moments",
    "shearbridge.models.shapenet",
    "shearbridge.train.fresh",
    "shearbridge.train.augment",
)


def code_version() -> str:
    """A hash of the source files of :data:`TRAINED_BY` (``training.json`` keeps it; a resumed
    ``train`` keeps no network trained by other code)."""
    import hashlib
    import importlib.util

    digest = hashlib.sha256()
    for name in TRAINED_BY:
        spec = importlib.util.find_spec(name)
        digest.update(
            Path(spec.origin).read_bytes() if spec is not None and spec.origin else name.encode()
        )
    return digest.hexdigest()[:16]


def json_ready(obj: Any) -> Any:
    """``obj`` as JSON reads it back (tuples as lists), so a stored configuration compares equal."""
    return json.loads(json.dumps(obj, default=str))

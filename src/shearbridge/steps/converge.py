"""Pipeline step: the population study's PSFNet trained to convergence, rung by rung.

``python -m shearbridge converge rung --ladder L --seed S --steps N`` trains one rung of ladder
``L`` (:mod:`shearbridge.config.converge`): PSFNet on the galaxies of the ladder's population plan,
exactly as the in-hour build trains a seed (:func:`shearbridge.steps.population_train.train_entry`)
but for ``N`` steps, a complete schedule. It writes, atomically, the parameters and a record into
the committed store (:meth:`shearbridge.layout.Layout.converge_store`): the validation history, the
rung's hash (:func:`rung_hash`), the wall time and the provenance (commit, hardware, versions). A
rung already in the store with the hash of this code is kept (``make converge`` resumes). Rungs
are independent jobs: ``make converge`` runs them on every local core,
``snakemake -s Snakefile --profile profiles/slurm converge`` on a cluster.

``python -m shearbridge converge summary --profile P`` is the build's step: for the ladder of
profile ``P`` (:func:`ladder_for_profile`) it reads each rung whose hash matches the code being
built (a rung made by other code is reported as stale and not used), evaluates it on the
validation galaxies (:func:`shearbridge.train.fresh.validation_errors`), and applies the
convergence rule (:func:`shearbridge.stats.converge.select_rung`) seed by seed. The result says,
per seed, which rungs were read, the ratios over each doubling, whether and where the validation
error is flat, and the rung kept; with no matching rung it says so (``source: none``), and the
paper states that the ladder has not been run for this code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import Any

from shearbridge.config import Profile, get_profile
from shearbridge.config.converge import Ladder, get_ladder
from shearbridge.errors import ConfigError
from shearbridge.io import read_json, write_json
from shearbridge.layout import Layout
from shearbridge.steps.command import Command, add_profile, add_threads, print_json, profile_of

__all__ = [
    "ladder_for_profile",
    "rung_config",
    "rung_hash",
    "train_rung",
    "summarize_ladder",
    "COMMANDS",
]

#: Packages whose versions enter a rung's hash (they decide the arithmetic of training).
_PACKAGES = ("numpy", "jax", "jaxlib", "flax", "optax")


def ladder_for_profile(profile_name: str) -> Ladder:
    """The ladder a profile's build reads: ``quick`` for the quick profile, ``survey`` otherwise."""
    return get_ladder("quick" if profile_name == "quick" else "survey")


def _plan(ladder: Ladder) -> tuple[Profile, Any]:
    from shearbridge.config.population import population_plan

    profile = get_profile(ladder.plan)
    return profile, population_plan(profile)


def rung_config(ladder: Ladder, plan: Any, seed: int, steps: int) -> Any:
    """The plan's training configuration for one rung: its seed and step count, validation every
    :meth:`Ladder.eval_every` steps (a complete run: its cosine schedule decays over ``steps``)."""
    if seed not in ladder.seeds or steps not in ladder.steps:
        raise ConfigError(
            f"ladder {ladder.name} trains seeds {list(ladder.seeds)} for steps "
            f"{list(ladder.steps)}; got seed {seed}, steps {steps}"
        )
    return dataclasses.replace(
        plan.fresh, seed=seed, steps=steps, eval_every=ladder.eval_every(steps)
    )


def rung_hash(ladder: Ladder, seed: int, steps: int) -> str:
    """What a rung's network depends on, 16 hex digits: the training code
    (:func:`~shearbridge.steps.population_train.code_version`), the training and validation
    galaxies (their set hashes), the rung's configuration and the numerical packages' versions."""
    from importlib import metadata

    from shearbridge.steps.population_sets import set_spec
    from shearbridge.steps.population_train import code_version, json_ready

    profile, plan = _plan(ladder)
    cfg = rung_config(ladder, plan, seed, steps)
    h = hashlib.sha256()
    parts = [
        code_version(),
        set_spec(profile, plan, "train", plan.n_train),
        set_spec(profile, plan, "val", plan.n_val),
        json.dumps(json_ready(dataclasses.asdict(cfg)), sort_keys=True),
    ]
    for name in _PACKAGES:
        try:
            parts.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name}=absent")
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _stored(ladder: Ladder, seed: int, steps: int, root: Path | None) -> dict[str, Any] | None:
    """The stored record of a rung when it and its parameters exist, else None."""
    rec = Layout.converge_store(ladder.name, seed, steps, ".json", root)
    par = Layout.converge_store(ladder.name, seed, steps, ".msgpack", root)
    return read_json(rec) if rec.exists() and par.exists() else None


def train_rung(ladder_name: str, seed: int, steps: int, root: Path | None = None) -> dict[str, Any]:
    """Train one rung into the store (module docstring); a stored rung with this code's hash is
    kept. Returns its record."""
    from flax import serialization

    from shearbridge import provenance
    from shearbridge.io import atomic_path
    from shearbridge.steps.population_sets import clean_set
    from shearbridge.steps.population_train import json_ready, train_entry

    ladder = get_ladder(ladder_name)
    profile, plan = _plan(ladder)
    cfg = rung_config(ladder, plan, seed, steps)
    digest = rung_hash(ladder, seed, steps)
    old = _stored(ladder, seed, steps, root)
    if old is not None and old.get("hash") == digest:
        return old
    t0 = time.perf_counter()
    _, train = clean_set(profile, plan, "train")
    _, val = clean_set(profile, plan, "val")
    params, hist = train_entry(plan, train, val, cfg, {}, f"PSFNet seed {seed}, {steps} steps")
    record = {
        "ladder": ladder.name,
        "plan": ladder.plan,
        "seed": seed,
        "steps": steps,
        "hash": digest,
        "history": json_ready(hist),
        "seconds": {"train": hist["train_seconds"], "wall": time.perf_counter() - t0},
        "provenance": provenance.record(),
    }
    with atomic_path(Layout.converge_store(ladder.name, seed, steps, ".msgpack", root)) as tmp:
        tmp.write_bytes(serialization.to_bytes(params))
    write_json(Layout.converge_store(ladder.name, seed, steps, ".json", root), record)
    return record


def summarize_ladder(profile: Profile, root: Path | None = None) -> dict[str, Any]:
    """The ladder of ``profile``: every rung with this code's hash evaluated on the validation
    galaxies, the convergence rule per seed (module docstring); written to the profile's
    :meth:`Layout.converge_results` and returned."""
    from flax import serialization

    from shearbridge.models.psfnet import PSFNet
    from shearbridge.stats.converge import select_rung
    from shearbridge.steps.population_sets import clean_set
    from shearbridge.train.fresh import validation_errors

    ladder = ladder_for_profile(profile.name)
    lprofile, plan = _plan(ladder)
    seeds: dict[str, Any] = {}
    stale: list[str] = []
    val = None
    for seed in ladder.seeds:
        read, errors, records = [], [], []
        for steps in ladder.steps:
            rec = _stored(ladder, seed, steps, root)
            if rec is None:
                continue
            if rec.get("hash") != rung_hash(ladder, seed, steps):
                stale.append(f"seed {seed}, {steps} steps")
                continue
            if val is None:
                _, val = clean_set(lprofile, plan, "val")
            path = Layout.converge_store(ladder.name, seed, steps, ".msgpack", root)
            params = serialization.msgpack_restore(path.read_bytes())
            cfg = rung_config(ladder, plan, seed, steps)
            errors.append(validation_errors(PSFNet(), params, val, cfg))
            read.append(steps)
            records.append(rec)
        entry: dict[str, Any] = {
            "rungs": read,
            "train_seconds": [r["seconds"]["train"] for r in records],
            "hardware": [r["provenance"]["hardware"]["cpu"] for r in records],
            "commits": sorted({r["provenance"]["commit"] for r in records}),
            "history_last_point": [r["history"]["val_point"][-1] for r in records],
        }
        if len(read) >= 2:
            entry.update(select_rung(read, errors))
        elif read:
            e = errors[0]
            entry["points"] = [float(e.mean())]
            entry["point_errors"] = [float(e.std(ddof=1) / len(e) ** 0.5)]
        seeds[str(seed)] = entry
    n_read = sum(len(e["rungs"]) for e in seeds.values())
    result = {
        "ladder": ladder.name,
        "plan": ladder.plan,
        "steps": list(ladder.steps),
        "seeds": seeds,
        "source": "store" if n_read else "none",
        "rungs_read": n_read,
        "rungs_planned": len(ladder.steps) * len(ladder.seeds),
        "stale": stale,
        "n_val": plan.n_val,
        "core_hours_planned": ladder.core_hours(),
    }
    write_json(Layout(profile).converge_results(), result)
    return result


def _arguments(p: ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=("rung", "summary"),
        help="rung (train one rung into the committed store) or summary (the build's reading of "
        "the ladder: validation errors, ratios, the convergence rule)",
    )
    add_profile(p)
    add_threads(p)
    p.add_argument("--ladder", help="rung: the ladder (quick, survey)")
    p.add_argument("--seed", type=int, help="rung: the training seed")
    p.add_argument("--steps", type=int, help="rung: the rung's step count")
    p.add_argument(
        "--root",
        type=Path,
        help="the store's root (default: src/static; a test writes a rung elsewhere)",
    )


def _converge(args: Namespace) -> None:
    if args.action == "summary":
        res = summarize_ladder(profile_of(args), args.root)
        print_json({k: res[k] for k in ("ladder", "source", "rungs_read", "rungs_planned")})
        return
    if args.ladder is None or args.seed is None or args.steps is None:
        raise ConfigError("converge rung needs --ladder, --seed and --steps")
    rec = train_rung(args.ladder, args.seed, args.steps, args.root)
    print_json({k: rec[k] for k in ("ladder", "seed", "steps", "hash", "seconds")})


COMMANDS = (
    Command(
        "converge",
        "PSFNet trained to convergence: one rung of a doubling ladder, or the build's summary",
        _arguments,
        _converge,
        fast_env=True,
    ),
)

"""Pipeline step: the survey-scale shear test, streamed in chunks and merged.

``python -m shearbridge survey chunk --tier T --chunk C`` renders chunk ``C`` of tier ``T``
(:mod:`shearbridge.config.survey`) group by group (:mod:`shearbridge.sim.survey`), measures every
group at every level with every method of the registry's ``survey`` study (as it measures: AnaCal
with its own response, a network uncalibrated) and ``survey_metacal`` study (calibrated by
metacalibration on the DFT grid, each galaxy deconvolved by its own PSF), reduces each to the sums
of :data:`shearbridge.stats.survey.FIELDS` and writes them, kilobytes, atomically. Stamps are never
written. ``survey merge`` adds the chunks' sums and writes m, c and alpha with jackknife errors over
the groups (:func:`shearbridge.stats.survey.merge`).

**Provenance.** Each method's block in a chunk carries a hash (:func:`method_hash`): the tier's
configuration, the source of every module that draws, renders, measures or reduces, the versions
of the numerical packages, the method's name and calibration, and a network's trained parameters.
The ``survey`` tier is run once (``make survey``, on every local core or through the SLURM
profile), resumably (a finished chunk is never redone), and its chunks are committed under
``src/static/survey/`` (:meth:`shearbridge.layout.Layout.survey_store`) with the commit, hardware
and wall time that made them. The merge of a build reads, method by method, the committed tier when
every one of its chunks holds that method with the hash of the code being built, and otherwise the
in-hour tier the build ran itself (:func:`shearbridge.config.survey.tier_for_profile`); the result
says which (``source``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import time
from argparse import ArgumentParser, Namespace
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import study
from shearbridge.config import Profile, config_hash, noise_tag
from shearbridge.config.survey import SurveyConfig, get_tier, tier_for_profile
from shearbridge.errors import ConfigError
from shearbridge.io import read_json, write_json
from shearbridge.layout import Layout
from shearbridge.steps.command import Command, add_profile, print_json, profile_of
from shearbridge.steps.survey_measure import (
    SURVEY_STUDIES,
    median_snr,
    run_groups,
    survey_methods,
)

__all__ = [
    "SURVEY_STUDIES",
    "HASHED_MODULES",
    "survey_methods",
    "method_hash",
    "source_digest",
    "run_groups",
    "run_chunk",
    "merge_survey",
    "COMMANDS",
]

#: Modules whose source enters every method's hash (the estimators package is added whole).
HASHED_MODULES = (
    "shearbridge.config.survey",
    "shearbridge.config.population",
    "shearbridge.config.seeds",
    "shearbridge.sim.survey",
    "shearbridge.sim.population",
    "shearbridge.sim.stamps",
    "shearbridge.stats.survey",
    "shearbridge.stats.metacal_fourier",
    "shearbridge.steps.survey",
    "shearbridge.steps.survey_measure",
    "shearbridge.steps.population_methods",
    "shearbridge.models.psfnet",
)
_PACKAGES = ("numpy", "scipy", "galsim", "jax", "jaxlib", "anacal")


def source_digest() -> str:
    """sha256 of the hashed modules' source and of every estimator module's."""
    h = hashlib.sha256()
    files = [Path(importlib.util.find_spec(m).origin) for m in HASHED_MODULES]
    files += sorted(
        Path(importlib.util.find_spec("shearbridge.estimators").origin).parent.glob("*.py")
    )
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    from importlib import metadata

    for name in _PACKAGES:
        try:
            h.update(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{name}=absent".encode())
    return h.hexdigest()


def _params_digest(est: Any) -> str:
    """sha256 of a network's trained parameters ('' for an estimator without them)."""
    params = getattr(est, "params", None)
    if params is None:
        return ""
    import jax

    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(params):
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()


def _describe(est: Any) -> str:
    """A dataclass estimator's settings (its repr); another's class name (a network's weights
    enter through :func:`_params_digest`)."""
    return repr(est) if dataclasses.is_dataclass(est) else type(est).__qualname__


def method_hash(tier: SurveyConfig, key: str, est: Any, seed: int) -> str:
    """What a method's survey numbers depend on (module docstring), as 16 hex digits."""
    h = hashlib.sha256()
    for part in (
        config_hash(tier),
        str(seed),
        key,
        _describe(est),
        source_digest(),
        _params_digest(est),
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _estimators(profile: Profile, tier: SurveyConfig, keys: Iterable[str] | None) -> dict:
    """``{(key, sigma): estimator}`` of the test's methods (``keys``: a subset)."""
    from shearbridge.runs import method_estimator

    chosen = [row for row in survey_methods() if keys is None or row[0] in set(keys)]
    if keys is not None and len(chosen) != len(set(keys)):
        known = [k for k, _, _ in survey_methods()]
        raise ConfigError(
            f"unknown survey methods {sorted(set(keys) - set(known))}; known: {known}"
        )
    return {
        (key, sigma): method_estimator(method, profile, sigma)
        for key, method, _ in chosen
        for sigma in tier.levels
    }


def run_chunk(
    tier_name: str,
    chunk: int,
    profile: Profile,
    keys: Iterable[str] | None = None,
    store: Path | None = None,
) -> dict[str, Any]:
    """Chunk ``chunk`` of tier ``tier_name`` (every group, every method of ``keys``, default all
    that measure this chunk), written atomically: one file with every method in the profile's
    :meth:`Layout.survey_chunk`, or with ``store`` (a store root) one file per method there
    (:meth:`Layout.survey_store`). Returns the record of all methods."""
    from shearbridge import provenance
    from shearbridge.stats.survey import FIELDS
    from shearbridge.steps.measure import progress_bar

    tier = get_tier(tier_name)
    if not 0 <= chunk < tier.n_chunks:
        raise ConfigError(f"chunk {chunk} outside tier {tier_name}'s 0..{tier.n_chunks - 1}")
    keys = [k for k, _, _ in survey_methods()] if keys is None else list(keys)
    keys = [k for k in keys if chunk < tier.chunks_of(k)]
    t0 = time.perf_counter()
    ests = _estimators(profile, tier, keys)
    scale = tier.population.sim.pixel_scale_arcsec
    with progress_bar(tier.groups_per_chunk, f"survey {tier_name} chunk {chunk}") as bar:
        sums, norms, seconds = run_groups(
            tier, profile.seed, chunk, range(tier.groups_per_chunk), ests, scale, bar.update
        )
    hashes = {key: method_hash(tier, key, est, profile.seed) for (key, _), est in ests.items()}
    record = {
        "tier": tier_name,
        "chunk": chunk,
        "seed": profile.seed,
        "networks_from": profile.name,
        "galaxies": tier.chunk_galaxies,
        "groups": tier.groups_per_chunk,
        "levels": [noise_tag(s) for s in tier.levels],
        "fields": list(FIELDS),
        "methods": {key: {"hash": hashes[key], "sums": sums[key]} for key in sums},
        "mf_norm_histograms": norms,
        "seconds": {**seconds, "wall": time.perf_counter() - t0},
        "provenance": provenance.record(),
    }
    if store is None:
        write_json(Layout(profile).survey_chunk(tier_name, chunk), record)
    else:
        for key in sums:
            one = {**record, "methods": {key: record["methods"][key]}}
            one["seconds"] = {k: v for k, v in seconds.items() if k in (key, "render")}
            write_json(Layout.survey_store(tier_name, key, chunk, store), one)
    return record


def _chunks(paths: Sequence[Path]) -> list[dict[str, Any]] | None:
    """The chunks at ``paths`` (None when one is missing)."""
    if not paths or not all(p.exists() for p in paths):
        return None
    return [read_json(p) for p in paths]


def merge_survey(profile: Profile, store_root: Path | None = None) -> dict[str, Any]:
    """Every method's m, c, alpha at every level, from the committed survey tier where its hash
    matches this code and from the build's in-hour tier otherwise; written to
    :meth:`Layout.survey_results` and returned."""
    from shearbridge.stats.survey import FIELDS, merge

    layout = Layout(profile)
    own = tier_for_profile(profile.name)
    survey = get_tier("survey")
    own_chunks = _chunks([layout.survey_chunk(own.name, c) for c in range(own.n_chunks)])
    if own_chunks is None:
        raise ConfigError(
            f"the in-hour survey tier {own.name!r} is incomplete under "
            f"{layout.survey_chunk(own.name, 0).parent}: run `python -m shearbridge survey chunk "
            f"--tier {own.name} --chunk N` for every chunk"
        )
    ests = _estimators(profile, survey, None)
    current = {key: method_hash(survey, key, est, profile.seed) for (key, _), est in ests.items()}
    methods: dict[str, Any] = {}
    present: dict[str, int] = {}
    for key, method, st in survey_methods():
        stored = _chunks(
            [
                Layout.survey_store(survey.name, key, c, store_root)
                for c in range(survey.chunks_of(key))
            ]
        )
        use_store = stored is not None and all(
            c["methods"].get(key, {}).get("hash") == current[key] for c in stored
        )
        chunks, tier = (stored, survey) if use_store else (own_chunks, own)
        if any(c["fields"] != list(FIELDS) for c in chunks):
            raise ConfigError(f"survey chunks of tier {tier.name} hold other fields than {FIELDS}")
        levels = {}
        hists = [h for c in chunks for h in c["mf_norm_histograms"]]
        for sigma in tier.levels:
            tag = noise_tag(sigma)
            sums = [g for c in chunks for g in c["methods"][key]["sums"][tag]]
            levels[tag] = {
                **merge(np.asarray(sums), tier.applied_shear),
                "noise_sigma": sigma,
                "median_snr": median_snr(hists, sigma),
            }
        galaxies = tier.galaxies_of(key)
        seconds = float(sum(c["seconds"].get(key, 0.0) for c in chunks))
        render = float(sum(c["seconds"]["render"] for c in chunks))
        present[key] = sum(
            Layout.survey_store(survey.name, key, c, store_root).exists()
            for c in range(survey.chunks_of(key))
        )
        methods[key] = {
            "method": method,
            "study": st,
            "label": study.get_method(method).label
            + (" + metacal" if st == "survey_metacal" else ""),
            "source": "committed survey tier" if use_store else "in-hour tier",
            "tier": tier.name,
            "n_chunks": tier.chunks_of(key),
            "hash": current[key] if use_store else chunks[0]["methods"][key]["hash"],
            "provenance": chunks[0]["provenance"],
            "galaxies_measured": galaxies,
            "seconds": seconds,
            # one core's seconds per galaxy and level (its 16 stamps, metacal's three sets), and
            # the rendering's per galaxy (8 distinct images); stamps measured per second
            "seconds_per_galaxy_level": seconds / (galaxies * len(tier.levels)),
            "render_seconds_per_galaxy": render / (len(chunks) * tier.chunk_galaxies),
            "stamps_per_second": galaxies
            * len(tier.levels)
            * 16
            * (3 if st != "survey" else 1)
            / seconds,
            "levels": levels,
        }
    out = {
        "profile": profile.name,
        "applied_shear": own.applied_shear,
        "survey_tier": {
            "galaxies": survey.n_galaxies,
            "galaxies_of": {key: survey.galaxies_of(key) for key in methods},
            "complete": all(m["source"] == "committed survey tier" for m in methods.values()),
            "chunks_present": present,
            "chunks_of": {key: survey.chunks_of(key) for key in methods},
        },
        "methods": methods,
    }
    write_json(layout.survey_results(), out)
    return out


def _arguments(p: ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=("chunk", "merge"),
        help="chunk (render, measure and reduce one chunk) or merge (m, c, alpha of every method)",
    )
    add_profile(p)
    p.add_argument("--tier", help="chunk: the survey tier (quick, paper, survey)")
    p.add_argument("--chunk", type=int, help="chunk: its index")
    p.add_argument(
        "--store",
        action="store_true",
        help="chunk: write one file per method into the committed store "
        "(src/static/survey/<tier>/<method>/) instead of the profile's data folder",
    )
    p.add_argument("--methods", help="chunk: comma-separated method keys (default: all)")


def _survey(args: Namespace) -> None:
    profile = profile_of(args)
    if args.action == "merge":
        res = merge_survey(profile)
        print_json({k: f"{v['source']} ({v['tier']})" for k, v in res["methods"].items()})
        return
    if args.tier is None or args.chunk is None:
        raise ConfigError("survey chunk needs --tier and --chunk")
    keys = None if not args.methods else [k.strip() for k in args.methods.split(",")]
    store = Layout.survey_store(args.tier).parents[1] if args.store else None
    res = run_chunk(args.tier, args.chunk, profile, keys=keys, store=store)
    print_json({k: res[k] for k in ("tier", "chunk", "galaxies", "seconds")})


COMMANDS = (
    Command(
        "survey",
        "the survey-scale shear test: one chunk (render, measure, reduce to sums) or the merge",
        _arguments,
        _survey,
    ),
)

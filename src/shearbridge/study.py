"""The study registry: every method once, the noise levels of every study, the plan.

A **method** is anything that turns stamps into shears and is compared with the others: a
trained network, a classical estimator, or the bound they are judged against. Each is
declared once, here, as a :class:`Method` (name, kind, label, plot style, a factory that
returns an object with the common estimator interface, and the studies it takes part in).
Every list of methods in the pipeline — the Snakefile's rules, the summaries, the figure
styles and labels, the CLI's help — is read from this registry; nothing restates it.

The studies and the noise levels each runs at are the table :data:`shearbridge.studies.STUDY_TABLE`
(one record per study; :func:`study_noise` reads it). The "pair" levels are the profile's lowest
noise and ShearNet's "high" 1e-3 (the highest level when 1e-3 is not on the grid). A method with
``levels="pair"`` (ShapeNet: PSFNet, trained once, serves every level) takes part in each study at
its pair levels only (:func:`study_noise` with the method, :func:`cells`). The seed streams are the
table :data:`shearbridge.config.seeds.SEED_STREAMS`.

Adding a classical estimator: write it (``estimators/<name>.py``, the
:class:`~shearbridge.estimators.base.ShapeEstimator` interface), its builder
(:mod:`shearbridge.estimators.factories`) and :func:`register` it in
:func:`shearbridge.methods_table.declare_methods`. Adding a network: the model
(``models/<name>.py``), its experiment (:mod:`shearbridge.config.experiments`) and its entry
there; a network trained once for every noise level (the population study's ``psfnet``) has
``once=True`` and no experiment. A module named in ``$SHEARBRIDGE_METHODS`` that calls
:func:`register` is imported with the registry (a method outside the package: the Snakefile, the
summaries and the CLI see it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from shearbridge.config import ConfigError, Profile, noise_tag
from shearbridge.config.seeds import SEED_STREAMS
from shearbridge.methods_table import SLOW_SHEAR_FRACTION, declare_methods
from shearbridge.method import KINDS, LEVEL_SETS, MIN_SHEAR_GALAXIES, STUDIES, Method, MethodContext
from shearbridge.studies import (
    STUDY_TABLE,
    Study,
    get_study,
    pair_levels,
    register_study,
    study_names,
)

__all__ = [
    "KINDS",
    "STUDIES",
    "SPEEDUP_REFERENCES",
    "TRAINING_GAIN",
    "SLOW_SHEAR_FRACTION",
    "MIN_SHEAR_GALAXIES",
    "SEED_STREAMS",
    "Method",
    "MethodContext",
    "register",
    "registered",
    "get_method",
    "methods",
    "names",
    "study_noise",
    "at",
    "cells",
    "LEVEL_SETS",
    "Study",
    "STUDY_TABLE",
    "register_study",
    "study_names",
    "pair_levels",
    "study_tags",
    "run_of",
    "trainings",
    "trained_once",
    "diagnosed",
    "diagnosis_noise",
    "PLUGINS_ENV",
]

#: Methods the networks' speed-ups are quoted against (timing study).
SPEEDUP_REFERENCES = ("mlfit", "hsm_regauss")
#: (analytic method, network built on it): RMSE(formula) / RMSE(network) on the same galaxies at
#: each noise level is what training the network adds (comparison summary).
TRAINING_GAIN = (("moments_affine", "shapenet"),)


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (its name must be new); returns it."""
    method.validate()
    if method.name in _REGISTRY:
        raise ConfigError(f"method {method.name!r} is already registered")
    if method.style is None:
        used = {m.style for m in _REGISTRY.values() if m.style is not None}
        method = dataclasses.replace(
            method, style=next(i for i in range(len(used) + 1) if i not in used)
        )
    _REGISTRY[method.name] = method
    return method


@contextmanager
def registered(*extra: Method) -> Iterator[list[Method]]:
    """Temporarily register ``extra`` methods (tests, exploratory work); removed on exit."""
    added = [register(m) for m in extra]
    try:
        yield added
    finally:
        for m in added:
            _REGISTRY.pop(m.name, None)


def get_method(name: str) -> Method:
    """The registered method ``name``; ConfigError lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; known: {sorted(_REGISTRY)}") from None


def methods(
    study: str | None = None, *, kind: str | None = None, available_only: bool = True
) -> list[Method]:
    """Registered methods in registration order, optionally of one study and one kind."""
    if study is not None:
        get_study(study)  # ConfigError naming the known studies
    return [
        m
        for m in _REGISTRY.values()
        if (study is None or study in m.studies)
        and (kind is None or m.kind == kind)
        and (not available_only or m.available())
    ]


def names(
    study: str | None = None, *, kind: str | None = None, available_only: bool = True
) -> list[str]:
    """The names of :func:`methods`."""
    return [m.name for m in methods(study, kind=kind, available_only=available_only)]


def study_noise(profile: Profile, study: str, method: str | None = None) -> tuple[float, ...]:
    """The noise levels (pixel sigma, image units) at which ``study`` runs on ``profile``; with
    ``method``, those at which that method takes part (its :attr:`Method.levels`)."""
    levels = _study_noise(profile, study)
    if method is not None and get_method(method).levels == "pair":
        pair = pair_levels(profile.noise_grid)
        levels = tuple(s for s in levels if any(math.isclose(s, p) for p in pair))
    return levels


def at(profile: Profile, study: str, sigma: float) -> list[str]:
    """The (available) methods of ``study`` that run at noise level ``sigma``."""
    return [
        n
        for n in names(study)
        if any(math.isclose(sigma, s) for s in study_noise(profile, study, n))
    ]


def cells(
    profile: Profile, study: str, methods: Sequence[str] | None = None
) -> list[tuple[str, str]]:
    """Every (method, noise tag) of ``study`` (default: its available methods), in registry then
    grid order: what the Snakefile expands and the summaries read."""
    return [
        (m, noise_tag(s))
        for m in (names(study) if methods is None else methods)
        for s in study_noise(profile, study, m)
    ]


def _study_noise(profile: Profile, study: str) -> tuple[float, ...]:
    """The levels of ``study``'s record (:mod:`shearbridge.studies`) on the profile's grid."""
    return get_study(study).noise(profile.noise_grid)


def diagnosis_noise(profile: Profile, primary: bool) -> tuple[float, ...]:
    """Noise levels of the layer-by-layer diagnosis: every level for the network diagnosed in
    full (the first of :func:`diagnosed`), the pair levels for the per-layer information of the
    others."""
    grid = tuple(profile.noise_grid)
    return grid if primary else pair_levels(grid)


def study_tags(profile: Profile, study: str, method: str | None = None) -> list[str]:
    """:func:`study_noise` as file-name tags (:func:`shearbridge.config.noise_tag`)."""
    return [noise_tag(s) for s in study_noise(profile, study, method)]


def run_of(name: str) -> str | None:
    """The experiment whose trained run method ``name`` needs (None for a classical method)."""
    m = _REGISTRY.get(name)
    if m is None:
        return None
    return m.experiment


def trained_once(name: str) -> bool:
    """Whether method ``name`` is a network trained once for every noise level
    (:attr:`Method.once`)."""
    m = _REGISTRY.get(name)
    return bool(m is not None and m.once)


def diagnosed() -> list[str]:
    """Experiments of the diagnosis, the first one diagnosed in full."""
    return [m.experiment for m in methods("diagnosis") if m.experiment]


def _levels(profile: Profile, m: Method) -> set[float]:
    levels: set[float] = set()
    for study in (s for s in m.studies if get_study(s).trains):  # the population study trains none
        if study == "diagnosis":
            levels |= set(diagnosis_noise(profile, diagnosed()[:1] == [m.experiment]))
        else:
            levels |= set(study_noise(profile, study))
    if m.levels == "pair":
        levels &= set(pair_levels(profile.noise_grid))
    return levels


def trainings(profile: Profile) -> list[tuple[str, float]]:
    """Every (experiment, noise sigma) the studies need trained, in registry order."""
    out: list[tuple[str, float]] = []
    for m in methods():
        exp = run_of(m.name)
        if exp is None:
            continue
        levels = _levels(profile, m)
        for s in profile.noise_grid:
            if s in levels and (exp, s) not in out:
                out.append((exp, s))
    return out


#: Comma-separated modules imported after the defaults, each registering its own methods with
#: :func:`register`: a group adds a method without editing this package.
PLUGINS_ENV = "SHEARBRIDGE_METHODS"


def _load_plugins() -> None:
    import importlib
    import os

    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"${PLUGINS_ENV} names {name!r}, which cannot be imported: {exc}"
            ) from None


declare_methods(register, get_method)
_load_plugins()

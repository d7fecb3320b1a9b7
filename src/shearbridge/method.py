"""One method of the study (:class:`Method`) and what its factory is given (:class:`MethodContext`).

The registry that holds the methods, and the studies' noise levels, is :mod:`shearbridge.study`;
this module is the record it holds, with the names a record may use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shearbridge.config import ConfigError
from shearbridge.studies import study_names

__all__ = ["KINDS", "LEVEL_SETS", "STUDIES", "MIN_SHEAR_GALAXIES", "Method", "MethodContext"]

KINDS = ("network", "classical", "bound")
#: The noise levels a method runs at (:attr:`Method.levels`).
LEVEL_SETS = ("grid", "pair")
#: The built-in studies (the table, with any added at run time: :mod:`shearbridge.studies`).
STUDIES = study_names()
#: The fewest shear-test galaxies a slow per-galaxy fit measures (or the whole set): at the lowest
#: S/N the ML fit flags most galaxies, and a handful measured leaves too few for m (the quick
#: profile: 256 and 64).
MIN_SHEAR_GALAXIES = 64


@dataclass(frozen=True)
class MethodContext:
    """What a method's factory may use: the profile's root seed, the noise level it measures at,
    and loaders of trained networks that the calling pipeline step provides (the registry knows no
    paths): ``load_network(experiment, noise_sigma) -> Trained`` (a run trained at one noise level)
    and ``load_population(entry) -> (model, params)`` (a network of the population study, trained
    once)."""

    seed: int
    noise_sigma: float
    load_network: Callable[[str, float], Any] | None = None
    load_population: Callable[[str], Any] | None = None


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Method:
    """One method of the study.

    Attributes
    ----------
    name : str
        Registry name: file names, CLI ``--method``, summary keys.
    kind : {"network", "classical", "bound"}
    label : str
        Label in figures and tables.
    studies : frozenset of str
        The studies (:data:`STUDIES`) it takes part in.
    build : callable or None
        ``build(MethodContext) -> ShapeEstimator`` (``measure(stamps, psf_image,
        pixel_scale_arcsec, noise_sigma) -> EstimatorResult``); ``None`` for a bound.
    experiment : str or None
        Networks: the experiment (:mod:`shearbridge.config.experiments`) whose trained run it uses.
    style : int or None
        Index into the house palette (:mod:`shearbridge.paper.plotting`); ``None``: the next free
        one.
    available : callable
        False where an optional dependency is missing (ngmix): the method is then left out.
    shear_fraction : float
        Fraction of the shear-test galaxies it measures (the first ones): see
        :data:`SLOW_SHEAR_FRACTION`.
    once : bool
        A network trained once for every noise level (the population study's,
        ``python -m shearbridge population train``) rather than one run per level: it has no
        experiment and no :func:`trainings`.
    levels : {"grid", "pair"}
        The noise levels it runs at in any study: every level the study has (``"grid"``), or only
        the study's levels among the pair levels (``"pair"``: a per-level network that a network
        trained once replaces elsewhere, so the build trains it at two levels instead of five).
    uncertainty : bool
        It predicts each galaxy's shear error (``extra["sigma_g"]``): the yardstick also scores it
        with inverse-variance weights (:mod:`shearbridge.summaries.yardstick`).
    """

    name: str
    kind: str
    label: str
    studies: frozenset[str] = field(default_factory=frozenset)
    build: Callable[[MethodContext], Any] | None = None
    experiment: str | None = None
    style: int | None = None
    available: Callable[[], bool] = _always
    description: str = ""
    shear_fraction: float = 1.0
    once: bool = False
    levels: str = "grid"
    uncertainty: bool = False

    def validate(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ConfigError(f"method name must be alphanumeric (with _), got {self.name!r}")
        if self.kind not in KINDS:
            raise ConfigError(f"method {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        unknown = sorted(set(self.studies) - set(study_names()))
        if unknown:
            raise ConfigError(
                f"method {self.name}: unknown studies {unknown}; known: {list(study_names())}"
            )
        if self.kind == "network" and not (self.experiment or self.once):
            raise ConfigError(f"network method {self.name} needs an experiment (or once=True)")
        if self.once and (self.kind != "network" or self.experiment):
            raise ConfigError(
                f"method {self.name}: once=True is for a network with no per-level experiment"
            )
        if self.levels not in LEVEL_SETS:
            raise ConfigError(
                f"method {self.name}: levels must be one of {LEVEL_SETS}, got {self.levels!r}"
            )
        if not 0.0 < self.shear_fraction <= 1.0:
            raise ConfigError(
                f"method {self.name}: shear_fraction must lie in (0, 1], got {self.shear_fraction}"
            )
        if self.kind != "bound" and self.build is None:
            raise ConfigError(f"method {self.name} needs a build(context) factory")

    def shear_galaxies(self, n_set: int) -> int:
        """Galaxies it measures of a shear-test set of ``n_set``: :attr:`shear_fraction` of them, at
        least :data:`MIN_SHEAR_GALAXIES`, at most all."""
        return min(n_set, max(MIN_SHEAR_GALAXIES, int(round(self.shear_fraction * n_set))))

    def estimator(self, context: MethodContext) -> Any:
        """The object that measures: ``build(context)``."""
        if self.build is None:
            raise ConfigError(f"method {self.name!r} has no estimator (kind {self.kind})")
        return self.build(context)

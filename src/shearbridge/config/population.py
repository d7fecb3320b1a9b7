"""Population study sizes per profile: training set, cells, noise levels, seeds, training length.

The study (:mod:`shearbridge.steps.population`) trains one PSF- and noise-aware network on a
survey-like population (:mod:`shearbridge.sim.population`) and measures it in cells of galaxy
family x PSF family x noise level. ``quick`` runs in a minute or two for the tests; ``paper`` is
what the manuscript reports.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from shearbridge.config.noise import METACAL_NOISE, SHEARNET_HIGH, SURVEY_NOISE_GRID
from shearbridge.config.profiles import Profile
from shearbridge.config.simulation import SimConfig
from shearbridge.errors import ConfigError

__all__ = [
    "PopulationPlan",
    "population_plan",
    "PLANS",
    "ABLATIONS",
    "BUDGET_RUN",
    "PopulationConfig",
    "FreshConfig",
    "GALAXY_FAMILIES",
    "PSF_FAMILIES",
]

GALAXY_FAMILIES: tuple[str, ...] = ("gauss", "exp", "sersic", "bulge_disk")
PSF_FAMILIES: tuple[str, ...] = ("gauss", "moffat", "kolmogorov")


@dataclass(frozen=True)
class PopulationConfig:
    """A survey-like population (module docstring); ``sim`` supplies the shape, size, flux and
    offset distributions, the pixel scale and the stamp size."""

    sim: SimConfig = field(default_factory=SimConfig)
    galaxy_families: tuple[str, ...] = GALAXY_FAMILIES
    psf_families: tuple[str, ...] = PSF_FAMILIES
    held_out_galaxy: str = "bulge_disk"
    held_out_psf: str = "kolmogorov"
    sersic_n: tuple[float, ...] = (0.8, 1.5, 2.5, 3.0)
    bulge_fraction_min: float = 0.1
    bulge_fraction_max: float = 0.6
    psf_fwhm_min: float = 0.45
    psf_fwhm_max: float = 0.85
    psf_g_max: float = 0.05
    moffat_beta: float = 3.5

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first offending field."""
        if not isinstance(self.sim, SimConfig):
            raise ConfigError(f"sim must be a SimConfig, got {type(self.sim).__name__}")
        self.sim.validate()
        for name, values, known in (
            ("galaxy_families", self.galaxy_families, GALAXY_FAMILIES),
            ("psf_families", self.psf_families, PSF_FAMILIES),
        ):
            if not values or len(set(values)) != len(values) or any(v not in known for v in values):
                raise ConfigError(f"{name} must be distinct names from {known}, got {values!r}")
        if self.held_out_galaxy not in self.galaxy_families or len(self.galaxy_families) < 2:
            raise ConfigError(
                f"held_out_galaxy {self.held_out_galaxy!r} must be one of galaxy_families "
                f"{self.galaxy_families!r}, which must leave at least one family to train on"
            )
        if self.held_out_psf not in self.psf_families or len(self.psf_families) < 2:
            raise ConfigError(
                f"held_out_psf {self.held_out_psf!r} must be one of psf_families "
                f"{self.psf_families!r}, which must leave at least one family to train on"
            )
        if not self.sersic_n or any(not 0.3 <= n <= 6.2 for n in self.sersic_n):
            raise ConfigError(
                f"sersic_n must be indices in [0.3, 6.2] (GalSim's range), got {self.sersic_n!r}"
            )
        if not 0 <= self.bulge_fraction_min <= self.bulge_fraction_max <= 1:
            raise ConfigError(
                "bulge fractions must satisfy 0 <= bulge_fraction_min <= bulge_fraction_max <= 1, "
                f"got {self.bulge_fraction_min}, {self.bulge_fraction_max}"
            )
        if not 0 < self.psf_fwhm_min <= self.psf_fwhm_max:
            raise ConfigError(
                f"PSF FWHM range must satisfy 0 < psf_fwhm_min <= psf_fwhm_max, got "
                f"{self.psf_fwhm_min}, {self.psf_fwhm_max}"
            )
        if not 0 <= self.psf_g_max < 0.5:
            raise ConfigError(f"psf_g_max must lie in [0, 0.5), got {self.psf_g_max}")
        if not self.moffat_beta > 1.1:
            raise ConfigError(f"moffat_beta must exceed 1.1, got {self.moffat_beta}")

    def replace(self, **changes: Any) -> "PopulationConfig":
        """A copy with ``changes``, validated."""
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new


@dataclass(frozen=True)
class FreshConfig:
    """How :func:`shearbridge.train.fresh.train_fresh` trains (that module's docstring)."""

    steps: int = 1500
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    noise_min: float = SURVEY_NOISE_GRID[0]  # the whole grid, survey S/N included
    noise_max: float = SURVEY_NOISE_GRID[-1]
    uncertainty_weight: float = 1.0
    bound_weighted: bool = True
    fresh_noise: bool = True
    eval_every: int = 250
    clip_norm: float = 1.0
    seed: int = 0

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ConfigError(
                f"steps, batch_size, eval_every must be >= 1, got {self.steps}, {self.batch_size}, "
                f"{self.eval_every}"
            )
        if not 0 < self.noise_min <= self.noise_max:
            raise ConfigError(
                f"need 0 < noise_min <= noise_max, got {self.noise_min}, {self.noise_max}"
            )
        for name in ("learning_rate", "weight_decay", "uncertainty_weight", "clip_norm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (
                name == "learning_rate" and value == 0
            ):
                raise ConfigError(
                    f"{name} must be a finite number >= 0 (learning_rate > 0), got {value}"
                )


#: The ingredients removed one at a time (each trained with the first seed): name, then the
#: :class:`~shearbridge.train.fresh.FreshConfig` fields (or ``model_`` + PSFNet fields) it changes.
ABLATIONS: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (
    ("fixed_noise", (("fresh_noise", False),)),  # one noise field per galaxy, reused every epoch
    ("plain_mse", (("bound_weighted", False),)),  # the squared error, not over each stamp's bound
    (
        "no_trunk",
        (("model_channels", ()), ("model_dilations", ())),
    ),  # no convolution: fixed features only
)
#: A budget run's name: this, then its per cent of the steps (``steps_25``; entry ``abl_steps_25``).
BUDGET_RUN = "steps_"
#: :class:`~shearbridge.models.psfnet.PSFNet` fields an ablation may change (as ``model_<field>``).
MODEL_FIELDS = ("channels", "dilations", "scales_px", "hidden", "head_layers")


@dataclass(frozen=True)
class PopulationPlan:
    """What the population study draws and trains.

    ``n_train``/``n_val``: noise-free training/validation galaxies (training families only);
    ``n_cell``: test galaxies of each galaxy family x PSF family cell (shared by its noise levels,
    each with its own noise); ``cell_noise``: the cells' pixel-noise sigmas; ``seeds``: the
    network's training seeds (the headline is their mean, their scatter its error); ``n_shear``:
    galaxies of each cell's shear test (16 stamps each) at the levels ``shear_noise``, calibrated by
    metacalibration at ``metacal_noise`` (a subset of them: the survey level); ``ablations``:
    the ingredients removed one at a time (:data:`ABLATIONS`).
    """

    population: PopulationConfig = field(default_factory=PopulationConfig)
    n_train: int = 16384
    n_val: int = 2048
    n_cell: int = 512
    cell_noise: tuple[float, ...] = SURVEY_NOISE_GRID[1:4]
    seeds: tuple[int, ...] = (0, 1, 2)
    n_shear: int = 128
    shear_noise: tuple[float, ...] = (SHEARNET_HIGH, METACAL_NOISE)
    metacal_noise: tuple[float, ...] = (METACAL_NOISE,)
    fresh: FreshConfig = field(default_factory=FreshConfig)
    ablations: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ABLATIONS
    budgets: tuple[float, ...] = (0.25, 0.5)

    def budget_steps(self, fraction: float) -> int:
        """The steps of the complete run trained for ``fraction`` of ``fresh.steps``
        (at least one)."""
        return max(1, round(fraction * self.fresh.steps))

    def ablation_names(self) -> list[str]:
        """The names of the ablations, then of the budget runs (``steps_<per cent>``), as
        :meth:`entries` names them without their ``abl_`` prefix."""
        return [name for name, _ in self.ablations] + [
            f"{BUDGET_RUN}{round(100 * f)}" for f in self.budgets
        ]

    def entries(self) -> list[tuple[str, FreshConfig, dict[str, Any]]]:
        """Every network the plan trains: ``(name, FreshConfig, PSFNet kwargs)``: one per seed
        (named by it), then each ablation (``abl_<name>``: the first seed with one ingredient
        changed), then each budget run (``abl_steps_<per cent>``: the first seed, a complete
        schedule of fewer steps)."""
        out = [(str(seed), dataclasses.replace(self.fresh, seed=seed), {}) for seed in self.seeds]
        for name, changes in self.ablations:
            fresh = {k: v for k, v in changes if not k.startswith("model_")}
            model = {k[len("model_") :]: v for k, v in changes if k.startswith("model_")}
            out.append(
                (f"abl_{name}", dataclasses.replace(self.fresh, seed=self.seeds[0], **fresh), model)
            )
        for name, fraction in zip(self.ablation_names()[len(self.ablations) :], self.budgets):
            steps = self.budget_steps(fraction)
            out.append(
                (
                    f"abl_{name}",
                    dataclasses.replace(
                        self.fresh,
                        seed=self.seeds[0],
                        steps=steps,
                        eval_every=min(self.fresh.eval_every, steps),
                    ),
                    {},
                )
            )
        return out

    def validate(self) -> None:
        self.population.validate()
        self.fresh.validate()
        for name in ("n_train", "n_val", "n_cell", "n_shear"):
            if getattr(self, name) < 2:
                raise ConfigError(f"{name} must be >= 2, got {getattr(self, name)}")
        for name in ("cell_noise", "shear_noise"):
            levels = getattr(self, name)
            if not levels or any(not s > 0 for s in levels):
                raise ConfigError(f"{name} must be positive sigmas, got {levels!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct integers, got {self.seeds!r}")
        fields = {f.name for f in dataclasses.fields(FreshConfig)} | {
            f"model_{m}" for m in MODEL_FIELDS
        }
        for name, changes in self.ablations:
            if not name.isidentifier() or any(k not in fields for k, _ in changes):
                raise ConfigError(
                    f"ablation {name!r} must change FreshConfig fields or model_ + one of "
                    f"{MODEL_FIELDS}, got {changes!r}"
                )
        if any(not 0 < f < 1 for f in self.budgets) or len(set(self.ablation_names())) != len(
            self.ablation_names()
        ):
            raise ConfigError(
                f"budgets must be distinct fractions of the steps in (0, 1), not named like an "
                f"ablation, got {self.budgets!r}"
            )
        if any(
            not any(abs(m - s) <= 1e-12 * s for s in self.shear_noise) for m in self.metacal_noise
        ):
            raise ConfigError(
                f"metacal_noise {self.metacal_noise!r} must be levels of shear_noise "
                f"{self.shear_noise!r}"
            )
        lo, hi = min(self.cell_noise), max(self.cell_noise)
        if lo < self.fresh.noise_min or hi > self.fresh.noise_max:
            raise ConfigError(
                f"cell noise {lo}..{hi} lies outside the training range "
                f"{self.fresh.noise_min}..{self.fresh.noise_max}"
            )


PLANS: dict[str, PopulationPlan] = {
    "paper": PopulationPlan(),
    # the paper's levels (the manuscript quotes each), on few galaxies
    "quick": PopulationPlan(
        n_train=1024,
        n_val=256,
        n_cell=48,
        seeds=(0,),
        n_shear=8,
        fresh=FreshConfig(steps=120, batch_size=64, eval_every=40),
    ),
}


def population_plan(profile: Profile) -> PopulationPlan:
    """The plan of ``profile`` (by name; a profile without its own plan gets the paper one),
    validated."""
    plan = PLANS.get(profile.name, PLANS["paper"])
    plan = dataclasses.replace(plan)
    plan.validate()
    return plan

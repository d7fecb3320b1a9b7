"""The survey-scale shear test's sizes: one :class:`SurveyConfig` per tier.

A tier is a size of the same test (:mod:`shearbridge.steps.survey`): galaxies in chunks, each chunk
one job with its own seed, reduced to sums (:mod:`shearbridge.stats.survey`). Three tiers:

* ``quick``: a few hundred galaxies, what the tests and the quick profile run (minutes);
* ``paper``: the in-hour size, what a 2-core ``make`` runs when no survey run matches its code;
* ``survey``: sized for sigma(m) <= 1e-3 at S/N ~ 10 and ~ 20 and <= 3e-4 at S/N ~ 200 from the
  per-galaxy scatter measured on the smaller tiers, run by ``make survey`` on every local core or on
  a cluster (``profiles/slurm``), one job per method and chunk, resumable, its reduced statistics
  committed with their provenance (``src/static/survey/<tier>/<method>/``).

The galaxies are the population study's (:mod:`shearbridge.sim.population`) in its training
families (galaxy and PSF), each galaxy with its own PSF; each gives 16 stamps (four orientations
x +-g x +-n, :func:`shearbridge.sim.stamps.expand_shear_test`). The levels are
:data:`shearbridge.config.noise.SURVEY_TEST_NOISE` (median matched-filter S/N ~ 10, 20, 200).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from shearbridge.config.noise import SURVEY_TEST_NOISE
from shearbridge.config.population import PopulationConfig
from shearbridge.errors import ConfigError

__all__ = ["SurveyConfig", "SURVEY_TIERS", "get_tier", "tier_for_profile"]


@dataclass(frozen=True)
class SurveyConfig:
    """One tier of the survey-scale shear test.

    ``n_chunks`` chunks of ``chunk_galaxies`` galaxies, each chunk processed (rendered, measured,
    reduced) ``group_galaxies`` galaxies at a time: a group is the jackknife's unit and bounds a
    job's memory (:meth:`memory_mb`). ``applied_shear``: the constant shear (LSST's test uses
    0.01-0.05). ``levels``: the pixel-noise sigmas.
    """

    name: str
    n_chunks: int
    chunk_galaxies: int
    group_galaxies: int
    applied_shear: float = 0.02
    levels: tuple[float, ...] = SURVEY_TEST_NOISE
    population: PopulationConfig = field(default_factory=PopulationConfig)
    #: ``(method key, groups)``: a slow method measures only the first ``groups`` groups of each
    #: chunk (a random subset of the same galaxies); every other method measures them all.
    method_groups: tuple[tuple[str, int], ...] = ()
    #: ``(method key, chunks)``: a slow method measures only the first ``chunks`` chunks.
    method_chunks: tuple[tuple[str, int], ...] = ()

    def validate(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ConfigError(f"survey tier name must be an identifier, got {self.name!r}")
        for name in ("n_chunks", "chunk_galaxies", "group_galaxies"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"survey tier {self.name}: {name} must be >= 1, got {value!r}")
        if self.chunk_galaxies % self.group_galaxies:
            raise ConfigError(
                f"survey tier {self.name}: chunk_galaxies {self.chunk_galaxies} must be a multiple "
                f"of group_galaxies {self.group_galaxies}"
            )
        if self.group_galaxies % 2:
            raise ConfigError(
                f"survey tier {self.name}: group_galaxies must be even (half sheared along g1, "
                f"half along g2), got {self.group_galaxies}"
            )
        if not 0.0 < self.applied_shear < 0.2:
            raise ConfigError(
                f"survey tier {self.name}: applied_shear must lie in (0, 0.2), got "
                f"{self.applied_shear!r}"
            )
        if not self.levels or any(not (s > 0) for s in self.levels):
            raise ConfigError(f"survey tier {self.name}: levels must be positive sigmas")
        for key, groups in self.method_groups:
            if not (isinstance(groups, int) and 1 <= groups <= self.groups_per_chunk):
                raise ConfigError(
                    f"survey tier {self.name}: method {key!r} must measure 1 to "
                    f"{self.groups_per_chunk} groups per chunk, got {groups!r}"
                )
        for key, chunks in self.method_chunks:
            if not (isinstance(chunks, int) and 2 <= chunks <= self.n_chunks):
                raise ConfigError(
                    f"survey tier {self.name}: method {key!r} must measure 2 to "
                    f"{self.n_chunks} chunks, got {chunks!r}"
                )
        if not isinstance(self.population, PopulationConfig):
            raise ConfigError(f"survey tier {self.name}: population must be a PopulationConfig")
        self.population.validate()

    @property
    def n_galaxies(self) -> int:
        return self.n_chunks * self.chunk_galaxies

    @property
    def groups_per_chunk(self) -> int:
        return self.chunk_galaxies // self.group_galaxies

    def groups_of(self, key: str) -> int:
        """The groups of each chunk method ``key`` measures."""
        return dict(self.method_groups).get(key, self.groups_per_chunk)

    def chunks_of(self, key: str) -> int:
        """The chunks method ``key`` measures (the first ones)."""
        return dict(self.method_chunks).get(key, self.n_chunks)

    def galaxies_of(self, key: str) -> int:
        """The galaxies method ``key`` measures."""
        return self.chunks_of(key) * self.groups_of(key) * self.group_galaxies

    def memory_mb(self) -> int:
        """A bound on one chunk job's memory: a group's stamps (16 per galaxy, float64) in its four
        metacal sets and their noisy copies, ten times over for the measuring methods' work
        arrays, plus 1.5 GB for the interpreter, JAX and GalSim."""
        stamp_mb = 53 * 53 * 8 / 2**20
        return int(1536 + 10 * 8 * 16 * self.group_galaxies * stamp_mb)

    def replace(self, **changes: Any) -> "SurveyConfig":
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new


#: The tiers by name (module docstring). The in-hour tiers give the ML fit (about 12 s of one core
#: per galaxy with metacalibration at three levels) and AnaCal's own detection (115 stamps/s) a
#: share of their groups. The ``survey`` tier: 196,608 galaxies, what AnaCal at the centroid needs
#: for sigma(m) = 1e-3 at S/N ~ 8 by the scatter the quick tier measured (1.6e5); the ML fit on
#: 8,192 (about 30 core-hours), AnaCal's own detection on 49,152 (its scatter asks ~1e7: out of
#: reach, its sigma(m) is what this many give).
SURVEY_TIERS: dict[str, SurveyConfig] = {
    t.name: t
    for t in (
        SurveyConfig(
            "quick",
            n_chunks=2,
            chunk_galaxies=32,
            group_galaxies=8,
            method_groups=(("mlfit_mcal", 1), ("anacal_detect", 1)),
        ),
        SurveyConfig(
            "paper",
            n_chunks=2,
            chunk_galaxies=128,
            group_galaxies=8,
            method_groups=(("mlfit_mcal", 1), ("anacal_detect", 4)),
        ),
        SurveyConfig(
            "survey",
            n_chunks=96,
            chunk_galaxies=2048,
            group_galaxies=256,
            method_chunks=(("mlfit_mcal", 4), ("anacal_detect", 24)),
        ),
    )
}
for _t in SURVEY_TIERS.values():
    _t.validate()


def get_tier(name: str) -> SurveyConfig:
    """The tier ``name``; :class:`ConfigError` naming the known ones."""
    if name not in SURVEY_TIERS:
        raise ConfigError(f"unknown survey tier {name!r}; known: {sorted(SURVEY_TIERS)}")
    return SURVEY_TIERS[name]


def tier_for_profile(profile_name: str) -> SurveyConfig:
    """The in-hour tier a profile's build runs when no survey run matches its code: ``quick`` for
    the quick profile, ``paper`` otherwise."""
    return SURVEY_TIERS["quick" if profile_name == "quick" else "paper"]

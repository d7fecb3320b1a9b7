"""The studies and the noise levels each runs at: one record per study, one table.

A **study** is one question the paper asks of the registered methods (:mod:`shearbridge.study`):
RMSE against the bound, the shear test, the timing, ... Each is one :class:`Study` in
:data:`STUDY_TABLE`: its name, the rule that picks its noise levels from a profile's grid
(:data:`LEVEL_RULES`), whether its per-level networks must be trained at those levels, and what it
is. The methods name the studies they join (:attr:`shearbridge.method.Method.studies`); the
Snakefile, the summaries and the CLI read both tables. Every level set derives from the named
levels of :mod:`shearbridge.config.noise`.

Adding a study: a record here (or :func:`register_study` from a plugin), the methods that join it
(their ``studies``), its step (``steps/<name>.py``, with its command), its Snakefile rule, its
summary and its number script: six files (``docs/architecture.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from shearbridge.config import ConfigError, noise_tag
from shearbridge.config.noise import METACAL_NOISE, SHEARNET_HIGH, SURVEY_TEST_NOISE

__all__ = [
    "Study",
    "STUDY_TABLE",
    "LEVEL_RULES",
    "pair_levels",
    "register_study",
    "registered_study",
    "get_study",
    "study_names",
]

Grid = tuple[float, ...]


def pair_levels(grid: Sequence[float]) -> Grid:
    """The "pair" levels: the grid's lowest and ShearNet's "high" 1e-3 (else the highest), no
    repeats."""
    grid = tuple(grid)
    tags = [noise_tag(s) for s in grid]
    high = (
        grid[tags.index(noise_tag(SHEARNET_HIGH))] if noise_tag(SHEARNET_HIGH) in tags else grid[-1]
    )
    return (grid[0],) if math.isclose(high, grid[0]) else (grid[0], high)


def _pair_and_highest(grid: Grid) -> Grid:
    """The pair levels and the highest (survey S/N), in grid order."""
    return tuple(s for s in grid if s in set(pair_levels(grid)) | {grid[-1]})


def _metacal(grid: Grid) -> Grid:
    """The metacalibration level (survey S/N); the highest when it is not on the grid."""
    return tuple(s for s in grid if math.isclose(s, METACAL_NOISE)) or grid[-1:]


def _survey(grid: Grid) -> Grid:
    """The survey-scale shear test's levels (S/N ~ 10, 20, 200) on the grid, in grid order."""
    return tuple(s for s in grid if any(math.isclose(s, t) for t in SURVEY_TEST_NOISE))


#: How a study picks its levels from a profile's noise grid.
LEVEL_RULES: dict[str, Callable[[Grid], Grid]] = {
    "grid": lambda grid: grid,
    "pair": pair_levels,
    "lowest": lambda grid: grid[:1],
    "pair_and_highest": _pair_and_highest,
    "metacal": _metacal,
    "survey": _survey,
}


@dataclass(frozen=True)
class Study:
    """One study: ``levels`` names a :data:`LEVEL_RULES` rule; ``trains``: the per-level networks
    that join it are trained at its levels (the population study trains its own network once and
    measures the others where they are trained anyway)."""

    name: str
    levels: str
    description: str
    trains: bool = True

    def validate(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ConfigError(f"study name must be alphanumeric (with _), got {self.name!r}")
        if self.levels not in LEVEL_RULES:
            raise ConfigError(
                f"study {self.name}: levels must be one of {list(LEVEL_RULES)}, got {self.levels!r}"
            )

    def noise(self, grid: Sequence[float]) -> Grid:
        """Its noise levels on ``grid``."""
        return LEVEL_RULES[self.levels](tuple(grid))


_DEFAULTS = (
    Study("compare", "grid", "RMSE against the per-galaxy Cramér–Rao bound"),
    Study(
        "bias",
        "pair_and_highest",
        "the shear test's table (m, c, alpha): the pair levels and the highest (survey S/N)",
    ),
    Study("bias_grid", "grid", "the shear test (round and anisotropic PSF) at every level"),
    Study(
        "metacal", "metacal", "the round-PSF shear test calibrated by metacalibration (survey S/N)"
    ),
    Study("timing", "pair", "galaxies/s side by side in one process"),
    Study("robustness", "pair", "out-of-distribution sets"),
    Study("ablation", "pair", "the ablation ladder and removals"),
    Study("learning", "pair", "learning curves from per-epoch snapshots"),
    Study("evaluate", "grid", "a headline network trained and evaluated at every level"),
    Study(
        "diagnosis",
        "grid",
        "layer-by-layer information: the first network at every level, the "
        "others at the pair levels",
    ),
    Study(
        "seeds", "lowest", "the headline networks retrained with other seeds, at the lowest level"
    ),
    Study(
        "population",
        "grid",
        "the population study's cells (its plan sets the levels; the grid stands for them)",
        trains=False,
    ),
    Study("population_shear", "grid", "the population cells' shear tests", trains=False),
    Study(
        "survey",
        "survey",
        "the survey-scale shear test, streamed in chunks: each method as it measures (AnaCal with "
        "its own response, a network uncalibrated)",
        trains=False,
    ),
    Study(
        "survey_metacal",
        "survey",
        "the survey-scale shear test calibrated by metacalibration",
        trains=False,
    ),
)
#: Every study by name, in the paper's order.
STUDY_TABLE: dict[str, Study] = {s.name: s for s in _DEFAULTS}


def register_study(study: Study) -> Study:
    """Add ``study`` to :data:`STUDY_TABLE` (its name must be new); returns it."""
    study.validate()
    if study.name in STUDY_TABLE:
        raise ConfigError(f"study {study.name!r} is already registered")
    STUDY_TABLE[study.name] = study
    return study


@contextmanager
def registered_study(*extra: Study) -> Iterator[list[Study]]:
    """Temporarily add studies (tests, exploratory work); removed on exit."""
    added = [register_study(s) for s in extra]
    try:
        yield added
    finally:
        for s in added:
            STUDY_TABLE.pop(s.name, None)


def get_study(name: str) -> Study:
    """The study ``name``; ConfigError lists the known ones."""
    try:
        return STUDY_TABLE[name]
    except KeyError:
        raise ConfigError(f"unknown study {name!r}; known: {list(STUDY_TABLE)}") from None


def study_names() -> tuple[str, ...]:
    """Every study's name, in table order."""
    return tuple(STUDY_TABLE)

"""Training to convergence: the doubling ladders of the population study's PSFNet.

The in-hour build trains PSFNet for a fixed budget (:class:`~shearbridge.config.population.
FreshConfig`, 1,500 steps in the paper profile) whose validation curve still falls. A
:class:`Ladder` trains the same network on the same galaxies, seed by seed, for a doubling series
of step counts, each a COMPLETE run (its own cosine schedule decaying to zero), so every rung ends
where a run of that length would end and no rung is a cut-off cosine tail. A seed has converged at
the first doubling over which its validation error does not fall beyond twice its error
(:func:`shearbridge.stats.converge.select_rung`).

Two ladders: ``quick`` (the quick profile's plan, a few dozen steps; the tests run it) and
``survey`` (the paper profile's plan, 1,500 to 24,000 steps, three seeds: about 3 core-hours on
this project's CPU, :meth:`Ladder.core_hours`; seed 0 took 57 min), run once by ``make converge``
(or through the SLURM profile) and committed with its provenance
(:mod:`shearbridge.steps.converge`).
"""

from __future__ import annotations

from dataclasses import dataclass

from shearbridge.errors import ConfigError

__all__ = ["Ladder", "LADDERS", "get_ladder"]


@dataclass(frozen=True)
class Ladder:
    """One doubling ladder: the population plan of profile ``plan`` (its galaxies, network and
    training settings), trained for each of ``steps`` (each twice the last) with each of
    ``seeds``; ``evals`` validation points per rung (the learning curve within a run)."""

    name: str
    plan: str
    steps: tuple[int, ...]
    seeds: tuple[int, ...]
    evals: int = 6
    #: one core's seconds per training step (measured on this project's 2-core machine), for the
    #: scheduler's wall-time request only (a job asks twice it)
    seconds_per_step: float = 0.08

    def validate(self) -> None:
        if not self.name.isidentifier():
            raise ConfigError(f"ladder name must be an identifier, got {self.name!r}")
        if (
            len(self.steps) < 2
            or any(b != 2 * a for a, b in zip(self.steps, self.steps[1:]))
            or self.steps[0] < 1
        ):
            raise ConfigError(
                f"ladder {self.name}: steps must double from a positive start, got {self.steps!r}"
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"ladder {self.name}: seeds must be distinct, got {self.seeds!r}")
        if self.evals < 1:
            raise ConfigError(f"ladder {self.name}: evals must be >= 1, got {self.evals}")

    def eval_every(self, steps: int) -> int:
        """Validation interval of a rung of ``steps`` (``evals`` points, the last at the end)."""
        return max(1, steps // self.evals)

    def rung_seconds(self, steps: int) -> float:
        """One core's expected seconds for a rung (the scheduler's request)."""
        return self.seconds_per_step * steps

    def core_hours(self) -> float:
        """The whole ladder's expected cost."""
        return sum(self.rung_seconds(s) for s in self.steps) * len(self.seeds) / 3600.0


LADDERS: dict[str, Ladder] = {
    "quick": Ladder("quick", plan="quick", steps=(30, 60, 120), seeds=(0,), evals=3),
    "survey": Ladder(
        "survey", plan="paper", steps=(1500, 3000, 6000, 12000, 24000), seeds=(0, 1, 2)
    ),
}


def get_ladder(name: str) -> Ladder:
    """The ladder ``name``, validated; :class:`ConfigError` naming the known ones."""
    if name not in LADDERS:
        raise ConfigError(f"unknown ladder {name!r}; known: {sorted(LADDERS)}")
    ladder = LADDERS[name]
    ladder.validate()
    return ladder

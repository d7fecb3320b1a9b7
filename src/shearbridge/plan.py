"""What the Snakefile expands: the profile's files, the registry's cells, what one job asks for.

The ``Snakefile`` holds the rules; this module holds the Python they call, so that the workflow
reads as rules and the arithmetic is importable and tested. :class:`Plan` is built once by the
Snakefile from the profile and Snakemake's own settings (``--cores``, ``--config threads=N
gpus=N``, local or cluster run); every path comes from its :class:`~shearbridge.layout.Layout`,
every list of methods and levels from the registry (:mod:`shearbridge.study`).

What one job asks for (threads, ``mem_mb``, ``runtime`` in minutes, ``gpus``): locally only
threads matter; a cluster submit command reads them all (``profiles/slurm``, README "Scaling
out").
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Mapping
from typing import Any

from shearbridge import study
from shearbridge.config import Profile, SimConfig, get_profile, noise_tag
from shearbridge.layout import Layout

__all__ = ["Plan", "git_commit", "files_digest", "SURVEY_SECONDS_PER_GALAXY"]

#: One survey galaxy's cost on one core per method key, its three levels and its rendering
#: included (seconds; metacal's three sets): measured on the in-hour tiers (2026-12-07, a loaded
#: 2-core machine), for the scheduler's wall time only (a rule asks twice it).
SURVEY_SECONDS_PER_GALAXY = {
    "anacal": 0.2,
    "anacal_true": 0.2,
    "anacal_detect": 1.5,
    "psfnet": 0.25,
    "psfnet_mcal": 0.45,
    "mlfit_mcal": 1.0,  # 3.5 before the ML fit's refits ran one galaxy per call (4.3x faster)
    "default": 1.0,
}


def files_digest(paths: Any) -> str:
    """16 hex digits of sha256 over each file's path and contents, in the order given: a rule's
    rerun trigger for committed files that must not be its inputs."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        h.update(str(p).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def git_commit() -> str:
    """The commit being built (a provenance rerun trigger); ``unknown`` without git."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def _nvidia_gpu() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")


class Plan:
    """The plan of ``profile`` for one Snakemake run.

    Parameters
    ----------
    profile : Profile
    cores : int or None
        ``--cores`` (None in cluster mode without it).
    options : mapping
        Snakemake's ``config`` (``threads``, ``gpus``).
    run_local : bool
        Whether the jobs run on this host.
    root : str
        The data root, relative to the repository (Snakemake's working directory).
    """

    def __init__(
        self,
        profile: Profile,
        cores: int | None = None,
        options: Mapping[str, Any] | None = None,
        run_local: bool = True,
        root: str = "src/data",
    ) -> None:
        options = options or {}
        self.profile = profile
        self.layout = Layout(profile, root=root)
        self.noise = {noise_tag(s): s for s in profile.noise_grid}
        self.study_tags = {st: study.study_tags(profile, st) for st in study.study_names()}
        # a method may run at some of a study's levels only (ShapeNet: the pair levels)
        self.cells = {st: study.cells(profile, st) for st in study.study_names()}
        # Threads of the rules that use a whole machine (dataset, crlb, diagnose, timing): every
        # core given to Snakemake (it caps threads at --cores); in cluster mode without --cores
        # what one job asks the scheduler for: `--config threads=N`, default 8.
        self.node_threads = int(options.get("threads", cores or 8))
        self.gpus = self._gpus(options, run_local)
        # CPU: one single-threaded training per core (measured: more samples/s in total than one
        # two-threaded training at a time, README "Speed"). GPU: one training at a time.
        self.train_threads = self.node_threads if self.gpus else 1
        # Wall time (minutes) of one training: a full-budget paper network takes 5-8 min on one
        # core; a profile with more training compute (full: 114x, meant for a GPU) gets 24 h.
        paper = get_profile("paper")
        compute = profile.n_train * profile.epochs
        self.train_minutes = 60 if compute <= paper.n_train * paper.epochs else 24 * 60

    @staticmethod
    def _gpus(options: Mapping[str, Any], run_local: bool) -> int:
        """GPUs one training (and the timing study) asks for: `--config gpus=N`, else
        $SHEARBRIDGE_GPUS. Neither set: on a cluster none (the submitting host says nothing about
        the compute nodes); locally one if this host has an NVIDIA GPU."""
        value = options.get("gpus", os.environ.get("SHEARBRIDGE_GPUS", ""))
        if str(value).strip():
            return int(value)
        return int(run_local and _nvidia_gpu())

    def mem_mb(self, copies: int) -> int:
        """Memory of one job: 2 GB (Python, JAX, XLA) plus ``copies`` float32 copies of the
        profile's largest dataset, rounded up to a whole GB (paper: dataset 3000, train 4000 MB)."""
        p = self.profile
        stamps = max(p.n_train, p.n_test, 4 * p.n_shear_pairs)
        data_mb = stamps * SimConfig().stamp_size_px ** 2 * 4 / 2**20
        return 1000 * math.ceil((2000 + copies * data_mb) / 1000)

    def job(self, copies: int, runtime: int = 30, gpus: bool = False) -> dict[str, int]:
        """A rule's ``resources``: :meth:`mem_mb` of ``copies``, ``runtime`` minutes, and the
        training GPUs when ``gpus``."""
        out = {"mem_mb": self.mem_mb(copies), "runtime": runtime}
        return {**out, "gpus": self.gpus} if gpus else out

    def cell_paths(self, pattern: Any, st: str) -> list[str]:
        """``pattern`` (a Layout path holding {method} and {tag}) at every cell of study ``st``."""
        return [str(pattern).format(method=m, tag=t) for m, t in self.cells[st]]

    def experiment_hash(self, config: str, tag: str) -> str:
        """A training's config hash: Snakemake reruns it when the experiment changes."""
        from shearbridge.config import config_hash
        from shearbridge.config.experiments import get_experiment

        return config_hash(get_experiment(config, self.profile, self.noise[tag]))

    def train_dataset(self, config: str, tag: str) -> Any:
        """The experiment's own training set (e.g. train_mix for shapenet_mix)."""
        from shearbridge.config.experiments import get_experiment

        exp = get_experiment(config, self.profile, self.noise[tag])
        return self.layout.manifest(exp.train_dataset)

    def network_inputs(self, method: str, tag: str) -> list[Any]:
        """A network's measuring job needs its trained run at that level (a network trained once
        for every level, the population study's: that training)."""
        if study.trained_once(method):
            return [self.layout.population("training.json")]
        run = study.run_of(method)
        return [self.layout.run_metrics(run, tag)] if run else []

    # ------------------------------------------------------- the survey-scale shear test
    @property
    def survey_tier(self) -> Any:
        """The in-hour survey tier this profile's build runs (:mod:`shearbridge.config.survey`)."""
        from shearbridge.config.survey import tier_for_profile

        return tier_for_profile(self.profile.name)

    @staticmethod
    def survey_chunks(tier: Any) -> list[str]:
        """A tier's chunk indices as its files spell them (``00000``, ...)."""
        return [f"{c:05d}" for c in range(tier.n_chunks)]

    def survey_inputs(self, key: str | None = None) -> list[Any]:
        """What a survey chunk of method ``key`` (None: every method) needs: the population
        study's networks, when it is a network trained once."""
        from shearbridge.steps.survey_measure import survey_methods

        methods = [m for k, m, _ in survey_methods() if key is None or k == key]
        if any(study.trained_once(method) for method in methods):
            return [self.layout.population("training.json")]
        return []

    def survey_job(self, tier: Any, key: str | None = None) -> dict[str, int]:
        """One survey chunk's ``resources``: its memory bound, and a wall time (minutes) of twice
        :data:`SURVEY_SECONDS_PER_GALAXY` per galaxy on one core, for method ``key`` (None: every
        method)."""
        from shearbridge.steps.survey_measure import survey_methods

        keys = [k for k, _, _ in survey_methods()] if key is None else [key]
        seconds = sum(
            SURVEY_SECONDS_PER_GALAXY.get(k, SURVEY_SECONDS_PER_GALAXY["default"])
            * tier.groups_of(k)
            * tier.group_galaxies
            for k in keys
        )
        return {"mem_mb": tier.memory_mb(), "runtime": max(10, math.ceil(2 * seconds / 60))}

    def survey_targets(self, tier: Any) -> list[Any]:
        """Every (method, chunk) file of ``tier`` in the committed store (``make survey``)."""
        from shearbridge.steps.survey_measure import survey_methods

        return [
            self.layout.survey_store(tier.name, key, c, root="src/static")
            for key, _, _ in survey_methods()
            for c in range(tier.chunks_of(key))
        ]

    def survey_store(self, tier: Any) -> list[Any]:
        """The committed chunks of ``tier`` present now."""
        return [p for p in self.survey_targets(tier) if p.exists()]

    def survey_store_digest(self, tier: Any) -> str:
        """A digest of the committed chunks' contents: the merge's rerun trigger (they are not its
        inputs, so that a build never remakes a committed chunk)."""
        return files_digest(self.survey_store(tier))

    def converge_targets(self, ladder: Any) -> list[Any]:
        """Every rung of a training ladder in the committed store (parameters and record)."""
        return [
            self.layout.converge_store(ladder.name, seed, steps, suffix, root="src/static")
            for seed in ladder.seeds
            for steps in ladder.steps
            for suffix in (".json", ".msgpack")
        ]

    def converge_job(self, ladder: Any, steps: int | str) -> dict[str, int]:
        """One rung's ``resources``: 4 GB and twice its expected one-core wall time (minutes)."""
        return self.job(4, runtime=max(10, math.ceil(2 * ladder.rung_seconds(int(steps)) / 60)))

    def converge_store_digest(self, ladder: Any) -> str:
        """A digest of the committed rungs' contents: the build's summary reruns when they change
        (they are not its inputs, so that a build never retrains a rung)."""
        store = self.layout.converge_store(ladder.name, root="src/static")
        return files_digest(sorted(store.glob("seed_*/steps_*")))

    def population_runs(self) -> list[Any]:
        """The per-level runs the population study measures: those the registry trains anyway at
        the population plan's levels (:mod:`shearbridge.steps.population_methods`)."""
        from shearbridge.config.population import population_plan

        plan = population_plan(self.profile)
        levels = set(plan.cell_noise) | set(plan.shear_noise)
        nets = {
            m.experiment
            for st in ("population", "population_shear")
            for m in study.methods(st)
            if m.experiment
        }
        return [
            self.layout.run_metrics(e, noise_tag(s))
            for e, s in study.trainings(self.profile)
            if e in nets and any(math.isclose(s, x) for x in levels)
        ]

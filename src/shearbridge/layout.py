"""Where every file lives: the one module that builds a data path.

showyourwork hard-codes ``src/tex``, ``src/data`` and ``src/scripts``; the constants below are the
only place the package spells them out. A profile's expensive outputs (datasets, trained runs,
bounds, results) live under ``<data root>/<profile>/`` so that switching profile never throws away
another profile's work; the small per-figure summaries live under ``<data root>/summary/`` (they
record the profile they came from). ``$SHEARBRIDGE_DATA`` overrides the data root (tests).

:class:`Layout` names every file of one profile by kind. The steps, the summaries, the scripts and
the Snakefile all ask it; nothing else joins a data path. A noise level is given as a pixel sigma
(a float, turned into its exact tag by :func:`shearbridge.config.noise_tag`) or as a tag string,
used verbatim, so that the Snakefile can pass its wildcards (``"{tag}"``, ``"{method}"``)::

    L = Layout(get_profile("quick"))
    L.run("baseline", 1e-5)                  # .../quick/runs/baseline/noise1e-05
    L.result("compare", "mlfit", 1e-3)       # .../quick/results/compare/mlfit/noise1e-03.json
    Layout(P, root="src/data").result("compare", "{method}", "{tag}")   # a Snakemake pattern
"""

from __future__ import annotations

import os
from pathlib import Path

from shearbridge.config import Profile, active_profile, noise_tag

__all__ = [
    "ROOT",
    "SRC",
    "TEX",
    "FIGURES",
    "OUTPUT",
    "SCRIPTS",
    "STATIC",
    "MATPLOTLIBRC",
    "Layout",
    "data_root",
    "summary_dir",
    "summary",
]

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
TEX = SRC / "tex"
FIGURES = TEX / "figures"
OUTPUT = TEX / "output"
SCRIPTS = SRC / "scripts"
#: Committed results too costly for a build: the survey tier's reduced statistics
#: (:meth:`Layout.survey_store`).
STATIC = SRC / "static"
MATPLOTLIBRC = SCRIPTS / "matplotlibrc"

Noise = float | str


def data_root() -> Path:
    """Root of all generated data (``src/data`` unless ``$SHEARBRIDGE_DATA`` is set)."""
    env = os.environ.get("SHEARBRIDGE_DATA")
    return Path(env) if env else SRC / "data"


def summary_dir(root: str | Path | None = None) -> Path:
    """``<data root>/summary/``: the figure summaries (profile-agnostic paths)."""
    return Path(root if root is not None else data_root()) / "summary"


def _tag(noise: Noise) -> str:
    return noise if isinstance(noise, str) else noise_tag(noise)


class Layout:
    """Every path of one profile's data, by kind (see the module docstring).

    Parameters
    ----------
    profile : Profile or str, optional
        The profile (or its name); default the active one.
    root : path, optional
        The data root; default :func:`data_root` (``src/data`` or ``$SHEARBRIDGE_DATA``). The
        Snakefile passes the relative ``"src/data"``.
    """

    def __init__(
        self, profile: Profile | str | None = None, root: str | Path | None = None
    ) -> None:
        name = profile if isinstance(profile, str) else (profile or active_profile()).name
        self.root = Path(root) if root is not None else data_root()
        self.dir = self.root / name

    # ------------------------------------------------------------ inputs: simulations and training
    def dataset(self, name: str) -> Path:
        """``datasets/<name>/``: stamps, noise fields, labels, PSF and ``manifest.json``."""
        return self.dir / "datasets" / name

    def manifest(self, name: str) -> Path:
        """A dataset's ``manifest.json`` (what the Snakefile waits for)."""
        return self.dataset(name) / "manifest.json"

    def run(self, experiment: str, noise: Noise) -> Path:
        """``runs/<experiment>/noise<tag>/``: one training run (checkpoints, losses, metrics)."""
        return self.dir / "runs" / experiment / f"noise{_tag(noise)}"

    def run_metrics(self, experiment: str, noise: Noise) -> Path:
        """A finished training's ``metrics.json`` (the Snakefile's target of a training)."""
        return self.run(experiment, noise) / "metrics.json"

    def population(self, name: str = "") -> Path:
        """``population/<name>``: the population study's sets, networks and ``training.json``."""
        return self.dir / "population" / name if name else self.dir / "population"

    def population_network(self, entry: int | str) -> Path:
        """A population-study network entry (a seed, ``abl_<name>``, ``moments``)."""
        return self.population(f"psfnet_{entry}.msgpack")

    # ------------------------------------------------------------------- bounds and diagnoses
    def bound(self, dataset: str = "test") -> Path:
        """``crlb/test.npz``: the autodiff Cramér–Rao bounds of the comparison set."""
        return self.dir / "crlb" / f"{dataset}.npz"

    def bound_fd(self, dataset: str) -> Path:
        """``crlb/<dataset>_fd.npz``: the finite-difference GalSim bounds of a robustness set."""
        return self.dir / "crlb" / f"{dataset}_fd.npz"

    def diagnosis(self, name: str = "") -> Path:
        """``diagnosis/<name>`` (``diagnosis.json``, ``floor.json``, ``weight_fractions.json``,
        ``anacal_tuning.json``, ...); no name: the folder."""
        return self.dir / "diagnosis" / name if name else self.dir / "diagnosis"

    # ------------------------------------------------------------------------------ results
    @property
    def results(self) -> Path:
        """``results/``: every measurement's result file."""
        return self.dir / "results"

    def result(self, kind: str, method: str, noise: Noise, suffix: str = ".json") -> Path:
        """``results/<kind>/<method>/noise<tag><suffix>`` (kinds: compare, bias, bias_psf,
        bias_mcal, yardstick, learning)."""
        return self.results / kind / method / f"noise{_tag(noise)}{suffix}"

    def evaluation(
        self, experiment: str, noise: Noise, dataset: str | None = None, suffix: str = ".json"
    ) -> Path:
        """``results/<experiment>/noise<tag>.json`` of a trained run on its test set (another
        set: ``noise<tag>_<dataset>.json``)."""
        stem = f"noise{_tag(noise)}" + (f"_{dataset}" if dataset else "")
        return self.results / experiment / f"{stem}{suffix}"

    def robustness(self, method: str, dataset: str, noise: Noise) -> Path:
        """``results/robustness/<method>/<dataset>_noise<tag>.json``."""
        return self.results / "robustness" / method / f"{dataset}_noise{_tag(noise)}.json"

    def population_results(self) -> Path:
        """``results/population.json``: the population study's cell table."""
        return self.results / "population.json"

    def timing(self) -> Path:
        """``timing.json``: every method's speed, side by side in one process."""
        return self.dir / "timing.json"

    def benchmark(self, name: str) -> Path:
        """``benchmarks/<name>.tsv``: a Snakemake rule's wall time."""
        return self.dir / "benchmarks" / f"{name}.tsv"

    # ------------------------------------------------------------- the survey-scale shear test
    def survey_chunk(self, tier: str, chunk: int | str) -> Path:
        """``survey/<tier>/chunk_<index>.json``: one chunk's sums, run by this profile's build."""
        index = chunk if isinstance(chunk, str) else f"{chunk:05d}"
        return self.dir / "survey" / tier / f"chunk_{index}.json"

    @staticmethod
    def survey_store(
        tier: str,
        key: str | None = None,
        chunk: int | str | None = None,
        root: str | Path | None = None,
    ) -> Path:
        """``src/static/survey/<tier>/<method key>/chunk_<index>.json``: one method's chunk as
        committed, with its provenance, read only when its code hash matches the code being
        built (no key: the tier's folder; no chunk: the method's)."""
        base = (Path(root) if root is not None else STATIC) / "survey" / tier
        if key is None:
            return base
        if chunk is None:
            return base / key
        return base / key / f"chunk_{chunk if isinstance(chunk, str) else f'{chunk:05d}'}.json"

    # ------------------------------------------------------------- training to convergence
    @staticmethod
    def converge_store(
        ladder: str,
        seed: int | str | None = None,
        steps: int | str | None = None,
        suffix: str = ".json",
        root: str | Path | None = None,
    ) -> Path:
        """``src/static/converged/<ladder>/seed_<seed>/steps_<steps><suffix>``: one rung of a
        training ladder as committed (``.msgpack`` parameters, ``.json`` record with its hash and
        provenance), read only when its hash matches the code being built (no seed: the ladder's
        folder; a string seed or steps, e.g. a Snakemake wildcard, is used verbatim)."""
        base = (Path(root) if root is not None else STATIC) / "converged" / ladder
        if seed is None:
            return base
        if steps is None:
            return base / f"seed_{seed}"
        index = steps if isinstance(steps, str) else f"{steps:06d}"
        return base / f"seed_{seed}" / f"steps_{index}{suffix}"

    def converge_results(self) -> Path:
        """``results/converge.json``: the build's reading of its training ladder."""
        return self.results / "converge.json"

    def survey_results(self) -> Path:
        """``results/survey.json``: the merged survey-scale shear test (m, c, alpha per method)."""
        return self.results / "survey.json"

    # ---------------------------------------------------------------------------- summaries
    def summary(self, name: str) -> Path:
        """``<data root>/summary/<name>``: a figure summary (shared by the profiles)."""
        return summary_dir(self.root) / name


def summary(name: str) -> Path:
    """``<data root>/summary/<name>``: a figure summary of whichever profile wrote it last."""
    return summary_dir() / name

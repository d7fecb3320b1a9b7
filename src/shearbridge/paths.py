"""Where things live. showyourwork hard-codes ``src/tex``, ``src/data`` and
``src/scripts``; this module is the only place the library spells them out.

Expensive outputs (datasets, checkpoints, results) live under
``src/data/<profile>/`` so switching profile never throws away another
profile's work. ``$SHEARBRIDGE_DATA`` overrides the data root (used by tests).
"""

from __future__ import annotations

import os
from pathlib import Path

from shearbridge.config import Profile, active_profile, noise_tag

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
TEX = SRC / "tex"
FIGURES = TEX / "figures"
OUTPUT = TEX / "output"
SCRIPTS = SRC / "scripts"
MATPLOTLIBRC = SCRIPTS / "matplotlibrc"


def data_root() -> Path:
    """Root of all generated data (``src/data`` unless ``$SHEARBRIDGE_DATA`` is set)."""
    env = os.environ.get("SHEARBRIDGE_DATA")
    return Path(env) if env else SRC / "data"


def profile_dir(profile: Profile | None = None) -> Path:
    """``src/data/<profile>/``: everything expensive that one profile produced."""
    profile = profile or active_profile()
    return data_root() / profile.name


def dataset_dir(name: str, profile: Profile | None = None) -> Path:
    return profile_dir(profile) / "datasets" / name


def run_dir(config_name: str, noise_sigma: float, profile: Profile | None = None) -> Path:
    """Working directory of one training run (checkpoints, loss log)."""
    return profile_dir(profile) / "runs" / config_name / f"noise{noise_tag(noise_sigma)}"


def population_dir(profile: Profile | None = None) -> Path:
    """The population study's galaxies and networks (``src/data/<profile>/population/``)."""
    return profile_dir(profile) / "population"


def results_dir(profile: Profile | None = None) -> Path:
    return profile_dir(profile) / "results"

"""Where the per-figure summaries live and how scripts read them.

Figure and number scripts read only these small files, under ``src/data/summary/``;
each records the profile it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import paths
from shearbridge.config import PROFILES, ConfigError, active_profile
from shearbridge.errors import MissingFileError
from shearbridge.io import read_json

__all__ = ["summary_dir", "load_summary_json", "load_summary_npz"]


def summary_dir() -> Path:
    return paths.data_root() / "summary"


def load_summary_json(name: str) -> dict[str, Any]:
    """The summary ``name`` (``src/data/summary/<name>.json``); refused when it belongs to another
    of the package's profiles than the active one (:func:`check_profile`)."""
    path = summary_dir() / f"{name}.json"
    if not path.exists():
        raise MissingFileError(f"missing {path}: run `python -m shearbridge summarize {name}` (or `make`) first")
    data = read_json(path)
    check_profile(path, data.get("profile") if isinstance(data, dict) else None)
    return data


def check_profile(path: Path, recorded: Any) -> None:
    """Summaries of every profile share ``src/data/summary/``: a figure of the active profile must
    not be drawn from another's. Profiles outside :data:`shearbridge.config.PROFILES` (tests'
    own) are not checked."""
    active = active_profile().name
    if recorded is not None and str(recorded) in PROFILES and str(recorded) != active:
        raise ConfigError(
            f"{path} holds the {recorded} profile's results, but the active profile is {active}: "
            f"run `make PROFILE={active}` (or set SHEARBRIDGE_PROFILE={recorded} to use these)")


def load_summary_npz(name: str) -> dict[str, np.ndarray]:
    path = summary_dir() / f"{name}.npz"
    if not path.exists():
        raise MissingFileError(f"missing {path}: run `python -m shearbridge summarize {name.split('_')[0]}` "
                                "(or `make`) first")
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    if "profile" in out:
        check_profile(path, str(out["profile"]))
    return out

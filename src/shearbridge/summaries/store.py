"""Where the per-figure summaries live and how scripts read them.

Figure and number scripts read only these small files, under ``src/data/summary/``;
each records the profile it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import layout
from shearbridge.config import PROFILES, ConfigError, active_profile
from shearbridge.errors import MissingFileError
from shearbridge.io import read_json
from shearbridge.layout import summary_dir

__all__ = ["summary_dir", "load_summary_json", "load_summary_npz", "summarize_command"]


def load_summary_json(name: str) -> dict[str, Any]:
    """The summary ``name`` (``src/data/summary/<name>.json``); refused when it belongs to another
    of the package's profiles than the active one (:func:`check_profile`)."""
    path = layout.summary(f"{name}.json")
    if not path.exists():
        raise MissingFileError(f"missing {path}: run `{summarize_command(name)}` first")
    data = read_json(path)
    check_profile(path, data.get("profile") if isinstance(data, dict) else None)
    return data


def summarize_command(name: str, profile: str | None = None) -> str:
    """The command that writes the summary file ``name`` (``stamps``, ``baseline_pred``) for the
    ``profile`` (default: the active one). When that summary's own inputs are missing, its error
    names the step that makes them."""
    profile = profile or active_profile().name
    return f"python -m shearbridge summarize {name.removesuffix('_pred')} --profile {profile}"


def check_profile(path: Path, recorded: Any) -> None:
    """Summaries of every profile share ``src/data/summary/``: a figure of the active profile must
    not be drawn from another's. Profiles outside :data:`shearbridge.config.PROFILES` (tests'
    own) are not checked. The error names the ``summarize`` command that rewrites it."""
    active = active_profile().name
    if recorded is not None and str(recorded) in PROFILES and str(recorded) != active:
        raise ConfigError(
            f"{path} holds the {recorded} profile's results, but the active profile is {active}: "
            f"run `{summarize_command(path.stem, active)}` "
            f"(or set SHEARBRIDGE_PROFILE={recorded} to use these)"
        )


def load_summary_npz(name: str) -> dict[str, np.ndarray]:
    path = layout.summary(f"{name}.npz")
    if not path.exists():
        raise MissingFileError(f"missing {path}: run `{summarize_command(name)}` first")
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    if "profile" in out:
        check_profile(path, str(out["profile"]))
    return out

"""Where the per-figure summaries live and how scripts read them.

Figure and number scripts read only these small files, under ``src/data/summary/``;
each records the profile it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import paths
from shearbridge.errors import MissingFileError
from shearbridge.io import read_json

__all__ = ["summary_dir", "load_summary_json", "load_summary_npz"]


def summary_dir() -> Path:
    return paths.data_root() / "summary"


def load_summary_json(name: str) -> dict[str, Any]:
    return read_json(summary_dir() / f"{name}.json")


def load_summary_npz(name: str) -> dict[str, np.ndarray]:
    path = summary_dir() / f"{name}.npz"
    if not path.exists():
        raise MissingFileError(f"missing {path}: run `python -m shearbridge summarize {name.split('_')[0]}` "
                                "(or `make`) first")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}

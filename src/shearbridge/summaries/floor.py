"""The floor summary: the low-noise floor step's result and the weight-fraction tuning's, one file.

``python -m shearbridge summarize floor`` writes ``src/data/summary/floor.json``
(``{"profile", "floor", "tuning"}``) from ``diagnosis/floor.json`` (``python -m shearbridge floor``)
and ``diagnosis/weight_fractions.json`` (``python -m shearbridge tune``) of the profile, for
``fig_floor.py`` and ``num_floor.py``.
"""

from __future__ import annotations

from pathlib import Path

from shearbridge import layout
from shearbridge.config import Profile
from shearbridge.errors import MissingFileError
from shearbridge.io import read_json, write_json
from shearbridge.layout import Layout

__all__ = ["write_floor_summary"]


def write_floor_summary(profile: Profile) -> Path:
    """Write and return ``src/data/summary/floor.json``; a missing input names the command that
    makes it."""
    parts = {}
    for key, name, command in (
        ("floor", "floor.json", "floor"),
        ("tuning", "weight_fractions.json", "tune"),
    ):
        path = Layout(profile).diagnosis(name)
        if not path.exists():
            raise MissingFileError(
                f"missing {path}: run `python -m shearbridge {command} --profile {profile.name}`"
            )
        parts[key] = read_json(path)
    out = layout.summary("floor.json")
    write_json(out, {"profile": profile.name, **parts})
    return out

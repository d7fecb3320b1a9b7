"""The pip pins (requirements.in / .lock) and environment.yml stay in step."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip().lstrip("- ").strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_environment_yml_pins_match_requirements_in():
    req = _pins((ROOT / "requirements.in").read_text().splitlines())
    env = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert req, "requirements.in has no pins"
    assert env == req


def test_lock_file_contains_every_top_level_pin():
    req = _pins((ROOT / "requirements.in").read_text().splitlines())
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    for name, version in req.items():
        assert lock.get(name) == version, (
            f"{name}: requirements.in {version} vs lock {lock.get(name)}"
        )


def test_every_lock_line_is_pinned():
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, f"unpinned line in requirements.lock: {line}"


def test_environment_yml_brings_ngmix_from_conda_forge():
    text = (ROOT / "environment.yml").read_text()
    assert "conda-forge" in text and re.search(r"^\s*-\s*ngmix\b", text, re.M)

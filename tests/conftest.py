"""Shared pytest configuration: ``--run-slow``, an isolated data root, and the build clock.

The whole-pipeline tests (the quick paper build, the README quick start) take as long as the
machine needs: a slow build is not a wrong one, and CI has its own limit (90 minutes).
``$SHEARBRIDGE_BUILD_TIMEOUT`` (seconds) sets a limit of your own; unset or 0, none.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def snakemake_env(**extra: str) -> dict[str, str]:
    """This process's environment for a Snakemake subprocess: the offline shims and this venv
    first on ``PATH``, and ``extra`` (e.g. ``SHEARBRIDGE_PROFILE="quick"``)."""
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(
        [
            str(root / "tools/offline/bin"),
            str(Path(sys.executable).parent),
            os.environ.get("PATH", ""),
        ]
    )
    return {**os.environ, **extra, "PATH": path}


def build_timeout() -> float | None:
    """The limit of a whole-pipeline subprocess.

    ``$SHEARBRIDGE_BUILD_TIMEOUT`` seconds, else none.
    """
    value = float(os.environ.get("SHEARBRIDGE_BUILD_TIMEOUT", "0") or 0)
    return value if value > 0 else None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="also run tests marked slow"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """Point ``SHEARBRIDGE_DATA`` at a temporary folder so tests never touch src/data."""
    root = tmp_path / "data"
    monkeypatch.setenv("SHEARBRIDGE_DATA", str(root))
    return root

"""Shared pytest configuration: ``--run-slow`` and an isolated data root."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


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

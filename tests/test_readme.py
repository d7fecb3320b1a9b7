"""The README's quick start, run literally (quick profile) in a scratch copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import build_timeout

from test_integration import _copy_worktree

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart -->\s*```bash\n(.*?)```\s*<!-- /quickstart -->", text, re.S)
    assert block, "README.md lost its quick-start block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_quick_start_runs_as_written(tmp_path):
    commands = quickstart_commands()
    assert commands[0] == "source .venv/bin/activate"
    work = tmp_path / "repo"
    work.mkdir()
    _copy_worktree(work)
    (work / ".venv").symlink_to(Path(sys.prefix))  # the environment `make` installed
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHEARBRIDGE_", "PYTEST"))}
    env["PYTHONPATH"] = str(work / "src")  # the copy's shearbridge
    env["MPLBACKEND"] = "Agg"
    script = "set -euo pipefail\n" + "\n".join(commands) + "\n"
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=build_timeout(),
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (work / "src/data/quick/runs/baseline/noise1e-05/model.msgpack").exists()
    assert (work / "src/data/quick/results/baseline/noise1e-05.json").exists()
    for fig in ("fig_stamps", "fig_activations"):
        assert (work / "src/tex/figures" / f"{fig}.pdf").stat().st_size > 1000
    shutil.rmtree(work / "src/data", ignore_errors=True)

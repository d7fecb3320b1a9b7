"""Where and with what the numbers were made: hardware, software, commit, runtimes.

Used by ``src/scripts/num_provenance.py`` (the paper's reproducibility appendix)
and recorded in every dataset manifest and result file.
"""

from __future__ import annotations

import csv
import datetime as _dt
import importlib.metadata as md
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from shearbridge import layout

SOFTWARE = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "galsim",
    "numpy",
    "scipy",
    "matplotlib",
    "showyourwork",
    "snakemake",
    "ngmix",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def accelerators() -> list[str]:
    """Non-CPU JAX devices, e.g. ``['NVIDIA H200']``; empty on a CPU-only machine."""
    import jax

    return [getattr(d, "device_kind", d.platform) for d in jax.devices() if d.platform != "cpu"]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str:
    """Short commit hash, with ``+dirty`` when the work tree has changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"],
            cwd=layout.ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=layout.ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def hardware() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": n_cores(),
        "memory_gib": memory_gib(),
        "accelerators": accelerators(),
        "platform": platform.platform(),
    }


def record() -> dict[str, Any]:
    """Everything a result file should carry about its making."""
    return {
        "hardware": hardware(),
        "versions": versions(),
        "commit": git_commit(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def rule_runtimes(profile_dir: Path) -> dict[str, float]:
    """Wall time (s) of each compute rule, from Snakemake's ``benchmark:`` files."""
    out: dict[str, float] = {}
    bench = profile_dir / "benchmarks"
    for tsv in sorted(bench.glob("*.tsv")):
        with tsv.open() as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows:
            out[tsv.stem] = float(rows[-1]["s"])
    return out

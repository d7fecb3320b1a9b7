"""Cluster mode (README "Scaling out", "A cluster."): every Snakemake process gets the
Python 3.11 asyncio fix, rules state their resources, and the README's commands run as
written with a stand-in ``sbatch`` (tests/fake_sbatch) that records what each job asked for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "tools" / "offline" / "bin"
FAKE_SBATCH = ROOT / "tests" / "fake_sbatch"
SUBMIT = ROOT / "profiles" / "slurm" / "sbatch-submit"
sys.path.insert(0, str(BIN))

import offline_shims as shims  # noqa: E402

# What one job of each rule asks for on the quick profile in cluster mode (threads: the
# default 8 of --config threads; mem_mb: Snakefile mem_mb(); README's table).
QUICK = {
    "dataset": {"threads": 8, "mem_mb": 3000, "runtime": 30, "gpus": 0},
    "crlb": {"threads": 8, "mem_mb": 3000, "runtime": 30, "gpus": 0},
}
TARGET = "src/data/quick/crlb/test.npz"  # two jobs: the test set (dataset), its bounds (crlb)


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    """A fresh interpreter without site-packages processing (-S): the .pth is not run by itself."""
    return subprocess.run(
        [sys.executable, "-S", "-c", code, *args], capture_output=True, text=True, timeout=60
    )


# ------------------------------------------------------ the asyncio fix, every process


def test_the_pth_line_restores_coroutine_once_and_keeps_an_existing_one():
    code = (
        "import asyncio, sys\n"
        "line = sys.argv[1]\n"
        "assert not hasattr(asyncio, 'coroutine')  # Python >= 3.11\n"
        "exec(line)\n"
        "f = lambda: 0\n"
        "assert asyncio.coroutine(f) is f\n"
        "first = asyncio.coroutine\n"
        "exec(line)\n"
        "assert asyncio.coroutine is first, 'a second run replaced it'\n"
    )
    proc = _python(code, shims.ASYNCIO_PTH_LINE)
    assert proc.returncode == 0, proc.stderr
    assert shims.ASYNCIO_PTH_LINE.startswith("import ") and shims.ASYNCIO_PTH_LINE.count("\n") == 1


def test_install_asyncio_pth_is_idempotent(tmp_path):
    path = shims.install_asyncio_pth(tmp_path)
    assert path == tmp_path / shims.ASYNCIO_PTH_NAME and path.read_text() == shims.ASYNCIO_PTH_LINE
    os.utime(path, (1, 1))
    assert shims.install_asyncio_pth(tmp_path) == path
    assert path.stat().st_mtime == 1, "an up-to-date file is left alone"
    path.write_text("stale\n")
    shims.install_asyncio_pth(tmp_path)
    assert path.read_text() == shims.ASYNCIO_PTH_LINE
    assert [p.name for p in tmp_path.iterdir()] == [shims.ASYNCIO_PTH_NAME]


def test_site_runs_the_installed_pth_at_interpreter_start(tmp_path):
    shims.install_asyncio_pth(tmp_path)
    proc = _python(
        "import site, sys; site.addsitedir(sys.argv[1]); import asyncio; "
        "f = lambda: 0; assert asyncio.coroutine(f) is f",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr


def test_the_install_step_put_the_fix_into_this_environment():
    """`make deps` (Makefile, $(VENV)/.installed) installs the .pth; a cluster job script runs
    `python -m snakemake` with this interpreter and no shim in between."""
    pth = Path(sysconfig.get_paths()["purelib"]) / shims.ASYNCIO_PTH_NAME
    assert pth.exists(), f"{pth} missing: run `make deps` (the install step writes it)"
    assert pth.read_text() == shims.ASYNCIO_PTH_LINE
    makefile = (ROOT / "Makefile").read_text()
    assert "offline_shims.py install-asyncio-pth" in makefile
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "7.15.2"


# ------------------------------------------------------------ the profile's submitter


def _sbatch_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").symlink_to(FAKE_SBATCH)
    return bin_dir


def _records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_sbatch_submit_asks_for_gpus_only_when_there_are_some(tmp_path):
    bin_dir = _sbatch_dir(tmp_path)
    job = tmp_path / "job.sh"
    job.write_text("#!/bin/sh\necho ran > ran.txt\n")
    log = tmp_path / "sbatch.jsonl"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SBATCH_LOG": str(log),
    }
    for gpus in ("0", "2"):
        proc = subprocess.run(
            [str(SUBMIT), gpus, "-c", "4", "--mem=3000", "-t", "60", str(job)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert re.fullmatch(r"Submitted batch job \d+\n", proc.stdout)
    first, second = _records(log)
    assert "gres" not in first["options"]
    assert second["options"]["gres"] == "gpu:2"
    assert first["options"]["cpus-per-task"] == "4" and first["options"]["mem"] == "3000"
    assert (tmp_path / "ran.txt").exists() and (tmp_path / ".snakemake/slurm-logs").is_dir()
    bad = subprocess.run(
        [str(SUBMIT), "-c", "4", str(job)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "number of GPUs" in bad.stderr


def test_the_stand_in_sbatch_rejects_what_sbatch_rejects(tmp_path):
    job = tmp_path / "job.sh"
    job.write_text("true\n")
    env = {**os.environ, "FAKE_SBATCH_LOG": str(tmp_path / "log.jsonl")}
    for args in (["--gres=gpu:0"], ["--mem", "8 G"], ["-t", "two hours"], []):
        proc = subprocess.run(
            [sys.executable, str(FAKE_SBATCH), *args, *([str(job)] if args else [])],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode != 0, args


# ------------------------------------------- rules state their resources (dry runs)


def _dry_run(tmp_path: Path, *args: str, env_extra: dict | None = None) -> dict[str, list[dict]]:
    """Snakemake -n in cluster mode (the shipped profile) on the quick profile: per rule, the
    threads and resources of every job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHEARBRIDGE_", "PYTEST"))}
    env.update(SHEARBRIDGE_PROFILE="quick", PYTHONPATH=str(ROOT / "src"), **(env_extra or {}))
    env["PATH"] = os.pathsep.join([str(BIN), str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run(
        [
            "snakemake",
            "-n",
            "-s",
            str(ROOT / "Snakefile"),
            "--profile",
            str(ROOT / "profiles/slurm"),
            "-d",
            str(tmp_path),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs: dict[str, list[dict]] = {}
    for block in re.split(r"\n\s*\n", proc.stdout):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if not (rule and res):
            continue
        threads = re.search(r"^\s+threads: (\d+)", block, re.M)
        values = dict(item.split("=", 1) for item in res.group(1).split(", "))
        jobs.setdefault(rule.group(1), []).append(
            {"threads": int(threads.group(1)) if threads else 1, **values}
        )
    return jobs


RUN = "src/data/quick/runs/baseline/noise1e-05/metrics.json"


@pytest.mark.parametrize(
    "how, extra_args, env_extra, gpus, threads",
    [
        ("nothing said: CPU trainings", [], {}, 0, 1),
        ("SHEARBRIDGE_GPUS=1", [], {"SHEARBRIDGE_GPUS": "1"}, 1, 8),
        ("--config gpus=2 threads=4", ["--config", "gpus=2", "threads=4", "--"], {}, 2, 4),
    ],
)
@pytest.mark.pipeline
def test_trainings_and_timing_ask_for_the_gpus_they_are_told(
    tmp_path, how, extra_args, env_extra, gpus, threads
):
    jobs = _dry_run(tmp_path, *extra_args, RUN, "src/data/quick/timing.json", env_extra=env_extra)
    trainings = jobs["train"] + jobs.get("train_full", [])
    assert trainings, jobs.keys()
    for job in trainings:
        assert (int(job["gpus"]), job["threads"]) == (gpus, threads), (how, job)
        assert (job["mem_mb"], job["runtime"]) == ("3000", "60"), job
    (timing,) = jobs["timing"]
    node = 4 if "threads=4" in extra_args else 8
    assert (int(timing["gpus"]), timing["threads"], timing["runtime"]) == (gpus, node, "30")
    for job in jobs["dataset"]:
        assert (job["threads"], job["gpus"], job["mem_mb"]) == (node, "0", "3000")


# ------------------------------------------------- the README's commands, as written


def readme_cluster_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- cluster -->\s*```bash\n(.*?)```\s*<!-- /cluster -->", text, re.S)
    assert block, "README.md lost its cluster block"
    joined = block.group(1).replace("\\\n", " ")
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _quick(command: str) -> str:
    """The README's command on the quick profile and a two-job target."""
    out = command.replace("SHEARBRIDGE_PROFILE=paper", "SHEARBRIDGE_PROFILE=quick")
    out = out.replace("src/data/paper/timing.json", TARGET)
    assert out != command, f"README command changed shape: {command}"
    return out


@pytest.mark.integration
def test_the_readme_cluster_commands_run_with_a_stand_in_sbatch(tmp_path):
    from test_integration import _copy_worktree

    export, *commands = readme_cluster_commands()
    assert export.startswith(
        "export SHEARBRIDGE_PROFILE=paper PATH=$PWD/tools/offline/bin:$PWD/.venv/bin:"
    )
    assert (
        len(commands) == 2
        and "--profile profiles/slurm" in commands[0]
        and "--cluster" in commands[1]
    )
    work = tmp_path / "repo"
    work.mkdir()
    _copy_worktree(work)
    (work / ".venv").symlink_to(Path(sys.prefix))  # the environment `make` installed
    bin_dir = _sbatch_dir(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHEARBRIDGE_", "PYTEST"))}
    env.update(
        PYTHONPATH=str(work / "src"), MPLBACKEND="Agg", CI="true"
    )  # Snakemake 7 polls cluster jobs every second instead of every ten
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    for command in commands:
        shutil.rmtree(work / "src/data", ignore_errors=True)
        log = tmp_path / f"sbatch-{commands.index(command)}.jsonl"
        env["FAKE_SBATCH_LOG"] = str(log)
        script = f"set -euo pipefail\n{_quick(export)}\n{_quick(command)}\n"
        proc = subprocess.run(
            ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, command + "\n" + proc.stdout[-4000:] + proc.stderr[-4000:]
        assert (work / TARGET).stat().st_size > 0
        assert (work / "src/data/quick/datasets/test/manifest.json").exists()
        assert not list(work.glob("slurm-*.out")), f"{command}: job logs in the repository root"
        records = _records(log)
        assert sorted(r["properties"]["rule"] for r in records) == sorted(QUICK), records
        for r in records:
            rule, opts, props = r["properties"]["rule"], r["options"], r["properties"]
            want = QUICK[rule]
            asked = {
                "threads": int(opts["cpus-per-task"]),
                "mem_mb": int(opts["mem"]),
                "runtime": int(opts["time"]),
                "gpus": int(opts.get("gres", "gpu:0").split(":")[-1]),
            }
            assert asked == want, (command, rule, opts)
            stated = {
                "threads": props["threads"],
                **{k: props["resources"][k] for k in ("mem_mb", "runtime", "gpus")},
            }
            assert stated == want, (command, rule, props)
        if "--profile" in command:
            assert {r["options"]["job-name"] for r in records} == {f"smk-{rule}" for rule in QUICK}
            assert len(list((work / ".snakemake/slurm-logs").glob("smk-*.out"))) == len(QUICK)
    shutil.rmtree(work / "src/data", ignore_errors=True)


@pytest.mark.pipeline
def test_the_survey_tier_is_one_job_per_method_and_chunk_with_its_resources(tmp_path):
    """`snakemake --profile profiles/slurm survey`: every (method, chunk) of the survey tier is one
    single-core job asking for the tier's memory bound and its method's wall time, no GPU."""
    from shearbridge.config import get_profile
    from shearbridge.config.survey import get_tier
    from shearbridge.plan import Plan
    from shearbridge.steps.survey_measure import survey_methods

    tier = get_tier("survey")
    plan = Plan(get_profile("quick"), cores=None, run_local=False)
    jobs = _dry_run(tmp_path, "survey")["survey_store_chunk"]
    assert len(jobs) == sum(tier.chunks_of(k) for k, _, _ in survey_methods())
    asked = {(j["mem_mb"], j["runtime"]) for j in jobs}
    want = {
        (str(plan.survey_job(tier, k)["mem_mb"]), str(plan.survey_job(tier, k)["runtime"]))
        for k, _, _ in survey_methods()
    }
    assert asked == want
    assert all(j["threads"] == 1 and j["gpus"] == "0" for j in jobs)


@pytest.mark.pipeline
def test_the_training_ladder_is_one_job_per_seed_and_rung_with_its_resources(tmp_path):
    """`snakemake --profile profiles/slurm converge`: every (seed, rung) of the survey ladder is one
    single-core job asking for twice its expected wall time, no GPU."""
    from shearbridge.config import get_profile
    from shearbridge.config.converge import get_ladder
    from shearbridge.plan import Plan

    ladder = get_ladder("survey")
    plan = Plan(get_profile("quick"), cores=None, run_local=False)
    jobs = _dry_run(tmp_path, "converge")["converge_rung"]
    assert len(jobs) == len(ladder.seeds) * len(ladder.steps)
    asked = sorted(int(j["runtime"]) for j in jobs)
    want = sorted(
        plan.converge_job(ladder, n)["runtime"] for n in ladder.steps for _ in ladder.seeds
    )
    assert asked == want
    assert all(j["threads"] == 1 and j.get("gpus", "0") == "0" for j in jobs)

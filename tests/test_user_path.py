"""A user's path, round two (issue 31, items 4, 5 and 8): what a user meets first says the truth.

* an unknown profile names where the name came from (``--profile`` or ``$SHEARBRIDGE_PROFILE``);
* a figure or number script run on a missing or another profile's summary prints one line
  ``error: ...``, exits with 2 and names the ``summarize`` command that fixes it;
* loading a dataset notices a same-size edit (the manifest's content hashes);
* a diverged training leaves no empty run folder;
* cluster job logs never land in the repository root;
* dataset folders honour the umask.

The repository files read here (scripts, README, .gitignore, the SLURM profile) are those beside
the imported package, so that the tests judge the code they run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import shearbridge
from shearbridge.config import PROFILE_ENV, ConfigError, active_profile, get_profile
from shearbridge.errors import ShearbridgeError

SRC = Path(shearbridge.__file__).resolve().parents[1]
ROOT = SRC.parent
SMALL = dataclasses.replace(
    get_profile("quick"), name="tiny", n_train=16, n_test=16, n_crlb=8, n_shear_pairs=2
)


# ------------------------------------------------------------------ item 4: unknown profile


def test_an_unknown_profile_names_where_the_name_came_from(monkeypatch):
    known = "known: ['full', 'paper', 'quick']"
    with pytest.raises(ConfigError) as exc:
        get_profile("quik", source="--profile")
    assert str(exc.value) == f"unknown profile 'quik' (set by --profile); {known}"
    with pytest.raises(ConfigError) as exc:
        get_profile("quik")
    assert str(exc.value) == f"unknown profile 'quik'; {known}"
    monkeypatch.setenv(PROFILE_ENV, "quik")
    with pytest.raises(ConfigError) as exc:
        active_profile()
    assert str(exc.value) == f"unknown profile 'quik' (set by $SHEARBRIDGE_PROFILE); {known}"


def test_the_command_line_does_not_blame_the_environment_for_its_option(capsys, monkeypatch):
    from shearbridge.cli import main

    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert main(["info", "--profile", "quik"]) == 2
    err = capsys.readouterr().err
    assert (
        "unknown profile 'quik' (set by --profile)" in err and "SHEARBRIDGE_PROFILE" not in err
    ), err


# ------------------------------------------------- item 5: scripts on the wrong summaries


def _run_script(name: str, data: Path, profile: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHEARBRIDGE_", "PYTEST"))}
    env.update(
        SHEARBRIDGE_DATA=str(data),
        SHEARBRIDGE_PROFILE=profile,
        MPLBACKEND="Agg",
        PYTHONPATH=str(SRC),
    )
    return subprocess.run(
        [sys.executable, f"src/scripts/{name}.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.pipeline
def test_a_figure_script_on_another_profiles_summary_says_one_line_and_the_fix(tmp_path):
    from shearbridge.io import save_npz

    summary = tmp_path / "summary" / "stamps.npz"
    save_npz(summary, clean=np.zeros((2, 8, 8)), profile=np.asarray("quick"))
    proc = _run_script("fig_stamps", tmp_path, "paper")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"error: {summary} holds the quick profile's results, but the active profile is paper: run "
        "`python -m shearbridge summarize stamps --profile paper` "
        "(or set SHEARBRIDGE_PROFILE=quick to use these)\n"
    )


def test_a_number_script_without_its_summary_names_the_summarize_command(tmp_path):
    proc = _run_script("num_baseline", tmp_path, "quick")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"error: missing {tmp_path / 'summary' / 'baseline.json'}: run "
        "`python -m shearbridge summarize baseline --profile quick` first\n"
    )


def test_a_missing_prediction_summary_names_its_experiments_summary(data_root, monkeypatch):
    from shearbridge.summaries import load_summary_npz

    monkeypatch.setenv(PROFILE_ENV, "quick")
    with pytest.raises(
        ShearbridgeError,
        match=r"`python -m shearbridge summarize baseline_raw "
        r"--profile quick` first$",
    ):
        load_summary_npz("baseline_raw_pred")


# ---------------------------------------------------- item 8a: a same-size edit of a dataset


@pytest.fixture
def small_test_set(data_root):
    from shearbridge.sim.datasets import generate_dataset

    old = os.umask(0o022)
    try:
        return generate_dataset("test", SMALL, workers=1, progress=False)
    finally:
        os.umask(old)


def test_loading_a_dataset_notices_a_same_size_edit(small_test_set):
    from shearbridge.sim.datasets import load_dataset

    load_dataset("test", SMALL)  # intact (and remembered as checked)
    f = small_test_set / "noise.npy"
    size = f.stat().st_size
    with open(f, "r+b") as fh:  # one noise value negated: same size, finite, fluxes unchanged
        fh.seek(size - 4)
        value = np.frombuffer(fh.read(4), np.float32)
        fh.seek(size - 4)
        fh.write((-value).tobytes())
    assert f.stat().st_size == size
    with pytest.raises(ShearbridgeError) as exc:
        load_dataset("test", SMALL)
    assert str(exc.value) == (
        f"dataset {small_test_set}: {f} was altered after it was made (its SHA-256 differs from "
        "the one in manifest.json); regenerate it with: "
        "python -m shearbridge simulate --dataset test --profile tiny --force"
    )


# ----------------------------------------------------- item 8d: folders honour the umask


def test_a_dataset_folder_honours_the_umask(small_test_set):
    assert stat.S_IMODE(small_test_set.stat().st_mode) == 0o755


# ------------------------------------------------ item 8b: a diverged training leaves nothing


@pytest.mark.pipeline
def test_a_diverged_training_leaves_no_empty_run_folder(tmp_path):
    from test_train import experiment, gaussian_stamps

    from shearbridge.errors import TrainingDivergedError
    from shearbridge.train.loop import train_and_evaluate

    train, test = gaussian_stamps(64, 53, seed=1), gaussian_stamps(16, 53, seed=2)
    workdir = tmp_path / "runs" / "tiny" / "noise1e-05"
    with pytest.raises(TrainingDivergedError, match="diverged at epoch 1"):
        train_and_evaluate(
            experiment(learning_rate=1e30),
            workdir,
            train_data=train,
            test_data=test,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == [], "the run folder and the folders made for it are removed"


# ---------------------------------------- item 8c: cluster job logs stay out of the root


def _ignored(tmp_path: Path, path: str) -> bool:
    """Whether the repository's .gitignore ignores ``path`` (in a scratch repository)."""
    repo = tmp_path / "ignore_check"
    if not repo.exists():
        repo.mkdir()
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        shutil.copyfile(ROOT / ".gitignore", repo / ".gitignore")
    proc = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", "--no-index", path])
    return proc.returncode == 0


def _cluster_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- cluster -->\s*```bash\n(.*?)```\s*<!-- /cluster -->", text, re.S)
    assert block, "README.md lost its cluster block"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    return [line for line in lines if line.strip().startswith("snakemake")]


def test_every_readme_cluster_command_writes_its_job_logs_into_an_ignored_folder(tmp_path):
    commands = _cluster_commands()
    assert len(commands) == 2
    for command in commands:
        if "--profile profiles/slurm" in command:
            config = (ROOT / "profiles/slurm/config.yaml").read_text()
            submit = re.search(r'^cluster: "(.*)"$', config, re.M).group(1)
        else:
            submit = re.search(r'--cluster "([^"]*)"', command).group(1)
        out = re.search(r"(?:--output[= ]|-o )(\S+)", submit)
        assert out, f"{command}: sbatch writes slurm-<id>.out into the working directory"
        log = out.group(1).replace("%j", "1").replace("%x", "smk-dataset")
        assert "/" in log and _ignored(tmp_path, log), f"{command}: {log} is not git-ignored"
    assert _ignored(tmp_path, "slurm-1.out"), "slurm-*.out is not in .gitignore"

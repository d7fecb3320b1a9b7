"""Training across processes: two local processes (one CPU device each, gloo collectives over
127.0.0.1) train exactly what one process trains on two devices, to float32 round-off.

The processes are real ones started with ``subprocess`` (``jax.distributed`` can be set
up once per process, before JAX starts); the tiny run is the one of ``tests/test_parallel.py``
(``test_train.experiment()`` on 160 analytic Gaussian stamps, 2 epochs of 6 steps). Also
the settings' resolution (command line, ``JAX_*``, SLURM) and its one-line errors.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from shearbridge.errors import ParallelError
from shearbridge.train.distributed import Cluster, cluster_from, slurm_first_host

pytestmark = pytest.mark.pipeline  # trainings or pipeline steps end to end: not in `make check`

TESTS = Path(__file__).resolve().parent

# argv: tests dir, workdir, then either "ref" or coordinator, count, id. A worker takes its
# settings from the command-line arguments (process 0) or the JAX_* environment (process 1).
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from shearbridge.train.distributed import cluster_from, initialize
    if sys.argv[3] != "ref":
        args = [sys.argv[3], int(sys.argv[4]), int(sys.argv[5])] if sys.argv[5] == "0" else []
        initialize(cluster_from(*args), timeout_s=60)
    import jax
    sys.path.insert(0, sys.argv[1])
    from test_train import experiment, gaussian_stamps
    from shearbridge.train.loop import train_and_evaluate

    data = gaussian_stamps(160, 20, seed=6)
    out = {"process": jax.process_index(), "processes": jax.process_count(),
           "local_devices": jax.local_device_count(), "devices": jax.device_count(), "runs": {}}
    for n in ((1, 2) if sys.argv[3] == "ref" else (None,)):
        m = train_and_evaluate(experiment(), sys.argv[2] + f"/run{n or ''}", train_data=data,
                               test_data=data, progress=False, devices=n)
        out["runs"][str(n)] = m
    print("RESULT" + json.dumps(out), flush=True)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    drop = (
        "XLA_FLAGS",
        "JAX_PLATFORMS",
        "JAX_COORDINATOR_ADDRESS",
        "JAX_NUM_PROCESSES",
        "JAX_PROCESS_ID",
        "SHEARBRIDGE_COORDINATOR",
    )
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SLURM_")}
    return env | {"JAX_PLATFORMS": "cpu"} | extra


def _result(proc: subprocess.Popen, timeout: float) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(
        next(ln for ln in out.splitlines() if ln.startswith("RESULT")).removeprefix("RESULT")
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two processes (one device each) and, alongside, one process on 2 forced devices and on 1."""
    work = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    coord = f"127.0.0.1:{port}"
    bind = {"JAX_COORDINATOR_BIND_ADDRESS": coord}  # loopback only
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(TESTS), str(work / "multi"), coord, "2", "0"],
            env=_env(**bind),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(TESTS), str(work / "multi"), coord, "2", "1"],
            env=_env(
                **bind, JAX_COORDINATOR_ADDRESS=coord, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID="1"
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(TESTS), str(work / "ref"), "ref", "0", "0"],
            env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    try:
        results = [_result(p, timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return {
        "p0": results[0],
        "p1": results[1],
        "ref": results[2],
        "work": work,
        "wall_s": time.perf_counter() - t0,
    }


def _params(path: Path) -> list[np.ndarray]:
    import jax
    from flax import serialization

    raw = serialization.msgpack_restore(path.read_bytes())
    return [np.asarray(a, np.float64) for a in jax.tree.leaves(raw["params"])]


def _val_losses(run_dir: Path) -> list[float]:
    return [e["val_loss"] for e in json.loads((run_dir / "losses.json").read_text())["epochs"]]


def test_two_processes_see_each_other(runs):
    for i, r in enumerate((runs["p0"], runs["p1"])):
        assert (r["process"], r["processes"], r["local_devices"], r["devices"]) == (i, 2, 1, 2)
        assert r["runs"]["None"]["n_devices"] == 2
    m0, m1 = runs["p0"]["runs"]["None"], runs["p1"]["runs"]["None"]
    for k in (
        "test_loss",
        "rmse_g",
        "best_epoch",
        "best_val_loss",
    ):  # both processes return the same
        assert m0[k] == m1[k], k


def test_only_process_0_writes(runs):
    written = sorted(p.name for p in (runs["work"] / "multi" / "run").iterdir())
    assert {"checkpoint.msgpack", "losses.json", "metrics.json", "model.msgpack"} <= set(written)
    assert not [n for n in written if n.endswith(".tmp")]  # atomic writes, nothing left behind


def test_two_processes_equal_one_process_to_float32_round_off(runs):
    """Parameters after 2 epochs (12 AdamW steps) and every validation loss: relative 1e-5 of the
    largest parameter / of the loss against 2 devices in one process (the same batch split), 1e-4
    against 1 device (the sums in another order, amplified by the steps, as in test_parallel)."""
    work = runs["work"]
    multi = _params(work / "multi" / "run" / "model.msgpack")
    for ref, tol in (("run2", 1e-5), ("run1", 1e-4)):
        other = _params(work / "ref" / ref / "model.msgpack")
        scale = max(np.max(np.abs(a)) for a in other)
        d_params = max(np.max(np.abs(a - b)) for a, b in zip(multi, other, strict=True))
        assert d_params <= tol * scale, (ref, d_params, scale)
        v_multi, v_ref = _val_losses(work / "multi" / "run"), _val_losses(work / "ref" / ref)
        assert len(v_multi) == len(v_ref) == 3
        for a, b in zip(v_multi, v_ref):
            assert abs(a - b) <= tol * abs(b), (ref, v_multi, v_ref)
        print(
            f"two processes vs {ref}: max |d params| {d_params:.3g} (scale {scale:.3g}), "
            f"max |d val loss| {max(abs(a - b) for a, b in zip(v_multi, v_ref)):.3g}; "
            f"wall {runs['wall_s']:.1f} s"
        )


# ----------------------------------------------------------------- settings and misuse


def test_one_process_needs_no_setup():
    assert cluster_from(environ={}) is None
    assert cluster_from(num_processes=1, environ={}) is None
    assert cluster_from(environ={"JAX_NUM_PROCESSES": "1"}) is None


def test_settings_from_command_line_environment_and_slurm():
    assert cluster_from("h:1234", 4, 3, environ={}) == Cluster("h:1234", 4, 3, "the command line")
    env = {
        "JAX_COORDINATOR_ADDRESS": "10.0.0.1:99",
        "JAX_NUM_PROCESSES": "2",
        "JAX_PROCESS_ID": "1",
    }
    assert cluster_from(environ=env) == Cluster("10.0.0.1:99", 2, 1, "the environment")
    assert cluster_from(process_id=0, environ=env).process_id == 0  # the command line wins
    slurm = {
        "SLURM_STEP_ID": "0",
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_JOB_ID": "4100",
        "SLURM_STEP_NODELIST": "gpu[007-010],cpu1",
    }
    assert cluster_from(environ=slurm) == Cluster("gpu007:61444", 8, 5, "SLURM")
    c = cluster_from(environ=slurm | {"SHEARBRIDGE_COORDINATOR": "login1:5000"})
    assert (c.coordinator, c.num_processes, c.process_id) == ("login1:5000", 8, 5)
    assert (
        cluster_from(environ=slurm | {"SHEARBRIDGE_COORDINATOR_PORT": "7000"}).coordinator
        == "gpu007:7000"
    )
    batch_script = {
        k: v for k, v in slurm.items() if k != "SLURM_STEP_ID"
    }  # not inside srun: one process
    assert cluster_from(environ=batch_script) is None
    assert (
        cluster_from(environ=slurm | {"SLURM_STEP_ID": str(0xFFFFFFFB)}) is None
    )  # the batch step
    assert (
        cluster_from(num_processes=1, process_id=0, environ=slurm) is None
    )  # one process on request
    lists = ("n1", "n1,n2", "gpu[3-5]", "a[01,07-09],b")
    assert [slurm_first_host(s) for s in lists] == ["n1", "n1", "gpu3", "a01"]


@pytest.mark.parametrize(
    ("kwargs", "env", "message"),
    [
        (
            {"coordinator": "h:1", "num_processes": 2, "process_id": 2},
            {},
            r"process id must lie in \[0, 1\]",
        ),
        (
            {"coordinator": "h:1", "num_processes": 2, "process_id": -1},
            {},
            r"process id must lie in",
        ),
        ({"coordinator": "h:1", "num_processes": 2}, {}, r"process id must lie in .* got None"),
        ({"num_processes": 2, "process_id": 1}, {}, r"2 processes need a coordinator HOST:PORT"),
        (
            {"coordinator": "h", "num_processes": 2, "process_id": 1},
            {},
            r"coordinator must be HOST:PORT",
        ),
        ({"num_processes": 0}, {}, r"number of processes must be >= 1"),
        ({"process_id": 1}, {}, r"process id 1 given without a number of processes"),
        ({}, {"JAX_NUM_PROCESSES": "two"}, r"JAX_NUM_PROCESSES must be an integer"),
    ],
)
def test_bad_settings_give_one_clear_error(kwargs, env, message):
    with pytest.raises(ParallelError, match=message):
        cluster_from(**kwargs, environ=env)


def test_command_line_reports_bad_settings_before_anything_runs(capsys):
    from shearbridge.cli import main

    argv = [
        "train",
        "--config",
        "baseline",
        "--noise",
        "1e-3",
        "--profile",
        "quick",
        "--coordinator",
        "127.0.0.1:1",
        "--num-processes",
        "2",
        "--process-id",
        "2",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: process id must lie in [0, 1]"), err

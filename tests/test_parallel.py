"""Data-parallel training (two forced CPU devices) equals one device to round-off; core claims.

The multi-device checks run in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``: JAX fixes its device
list when its CPU backend starts, so the main test process cannot switch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shearbridge.train.parallel import ParallelError, choose_devices, claim_cores, data_parallel

pytestmark = pytest.mark.pipeline  # trainings or pipeline steps end to end: not in `make check`

TESTS = Path(__file__).resolve().parent

# One step's loss and gradients on a batch split over two devices vs one device, and a
# float64 reference; then a short real training (train_and_evaluate) on 1 and 2 devices.
SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, sys
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    sys.path.insert(0, sys.argv[1])
    from test_train import experiment, gaussian_stamps
    from shearbridge.models import get_model
    from shearbridge.train.parallel import choose_devices, data_parallel
    from shearbridge.train.loop import train_and_evaluate
    from shearbridge.train.optim import compile_options

    out = {"n_devices": jax.device_count()}
    model = get_model("enhanced", 4)
    data = gaussian_stamps(64, 20, seed=5)
    x = jnp.asarray(data.images(1e-3), jnp.float32)
    y = jnp.asarray(data.targets(4), jnp.float32)
    params = model.init(jax.random.PRNGKey(0), x[:1])["params"]
    idx = np.arange(3, 35, dtype=np.int32)  # a batch of 32

    def loss_grad(p, x, y, idx):
        def loss(p):
            return jnp.mean((model.apply({"params": p}, x[idx]) - y[idx]) ** 2)
        return jax.value_and_grad(loss)(p)

    single = jax.jit(loss_grad).lower(params, x, y, idx).compile(compiler_options=compile_options())
    dp = data_parallel(choose_devices(32, 2))
    pr, xr, yr = dp.replicate((params, x, y))
    sharded = jax.jit(loss_grad, out_shardings=dp.replicated).lower(
        pr, xr, yr, dp.shard_batch(idx)).compile(compiler_options=compile_options())
    l1, g1 = single(params, x, y, idx)
    l2, g2 = sharded(pr, xr, yr, dp.shard_batch(idx))
    p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    l64, g64 = jax.jit(loss_grad)(
        p64, jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64), idx)
    out["loss"] = [float(l1), float(l2), float(l64)]
    out["grad_replicated"] = all(
        leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(g2))
    rows = []
    for a, b, c in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), jax.tree.leaves(g64)):
        a, b, c = (np.asarray(v, np.float64) for v in (a, b, c))
        rows.append({"d12": float(np.max(np.abs(a - b))), "d1_64": float(np.max(np.abs(a - c))),
                     "d2_64": float(np.max(np.abs(b - c))), "scale": float(np.max(np.abs(c)))})
    out["grads"] = rows

    jax.config.update("jax_enable_x64", False)
    data = gaussian_stamps(160, 20, seed=6)
    hist = {}
    for n in (1, 2):
        m = train_and_evaluate(experiment(), sys.argv[2] + f"/run{n}", train_data=data,
                               test_data=data, progress=False, devices=n)
        log = json.load(open(sys.argv[2] + f"/run{n}/losses.json"))
        hist[n] = {"val": [e["val_loss"] for e in log["epochs"]], "n_devices": m["n_devices"],
                   "test_loss": m["test_loss"]}
    out["train"] = hist
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def two_device_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("parallel")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env |= {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(TESTS), str(work)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT"))


def test_two_forced_host_devices_are_visible(two_device_run):
    assert two_device_run["n_devices"] == 2


def test_sharded_gradients_equal_single_device_to_round_off(two_device_run):
    """Splitting the batch only reorders the sums: the two float32 results differ from
    each other by no more than a few times the single-device result's own round-off
    error (measured against float64), and both match float64 to float32 precision."""
    u = 2.0**-24  # float32 unit round-off
    l1, l2, l64 = two_device_run["loss"]
    assert abs(l1 - l2) <= 8 * max(abs(l1 - l64), u * abs(l64))
    assert two_device_run["grad_replicated"]
    for row in two_device_run["grads"]:
        own_error = max(row["d1_64"], u * row["scale"])
        assert row["d12"] <= 8 * own_error, row
        assert row["d2_64"] <= 8 * own_error, row
        assert row["d1_64"] <= 1e-4 * row["scale"] + 1e-30, row  # float32-level agreement


def test_data_parallel_training_matches_single_device(two_device_run):
    """Two epochs of the real training loop: same validation losses to float32 round-off
    amplified by a few dozen AdamW steps (relative 1e-4), and the run reports its devices."""
    h = two_device_run["train"]
    assert h["1"]["n_devices"] == 1 and h["2"]["n_devices"] == 2
    v1, v2 = h["1"]["val"], h["2"]["val"]
    assert len(v1) == len(v2) >= 3
    for a, b in zip(v1, v2):
        assert abs(a - b) <= 1e-4 * abs(a), (v1, v2)
    assert abs(h["1"]["test_loss"] - h["2"]["test_loss"]) <= 1e-4 * h["1"]["test_loss"]


# ----------------------------------------------------------------- device and core choice


def test_choose_devices_single_cpu_and_misuse():
    import jax

    n = jax.device_count()
    assert len(choose_devices(128)) == max(d for d in range(1, n + 1) if 128 % d == 0)
    assert data_parallel(choose_devices(128, 1)) is None  # one device: plain jit
    with pytest.raises(ParallelError, match="devices must lie in"):
        choose_devices(128, n + 1)
    with pytest.raises(ParallelError, match="devices must lie in"):
        choose_devices(128, 0)
    with pytest.raises(ParallelError, match="at least one device"):
        data_parallel([])


def test_claim_cores_rejects_zero():
    with pytest.raises(ParallelError, match="threads must be >= 1"):
        claim_cores(0)


CLAIM = textwrap.dedent(
    """
    import os, sys
    from shearbridge.train.parallel import claim_cores
    cores = claim_cores(1, lock_dir=sys.argv[1])
    print(cores, sorted(os.sched_getaffinity(0)), flush=True)
    sys.stdin.readline()  # hold the claim until told to exit
    """
)


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity and at least two allowed cores",
)
def test_two_processes_claim_different_cores(tmp_path):
    """Each claimant pins itself to one core that no other claimant holds."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        lines = [p.stdout.readline().split("] [") for p in procs]
    finally:
        for p in procs:
            p.communicate("\n", timeout=60)
    claimed = [json.loads(a + "]") for a, _ in lines]
    affinity = [json.loads("[" + b) for _, b in lines]
    assert all(len(c) == 1 for c in claimed)
    assert claimed == affinity  # the affinity mask is what was claimed
    assert claimed[0] != claimed[1]

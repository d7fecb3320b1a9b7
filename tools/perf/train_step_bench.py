"""Time a CNN training step on the CPU: samples/s, GFLOP/s, % of the machine's matmul rate.

Standalone: ``.venv/bin/python tools/perf/train_step_bench.py [options]``. It times
the step ``train.py`` runs (forward + backward + AdamW update, the dataset on the
device and each batch gathered by index inside the jitted step) for several
variants, interleaved (A B C A B C ...) so that load from other processes hits
all of them alike, and a 2048^2 float32 matmul in every round as the yardstick.
Each variant is checked against the baseline before timing (same parameters,
predictions and gradients equal to float32 round-off).

Variants (``--variants``, comma-separated, or ``all``; default
``flax,flax-noynnconv,flax-rspool``):

* ``flax``: ``shearbridge.models.EnhancedGalaxyNN``, default XLA (its pooling is
  ``fastconv.avg_pool2`` since the speed-up was integrated; before, ``nn.avg_pool``).
* ``flax-noynnconv``: the same, compiled without YNNPACK convolutions (Eigen's).
* ``flax-ynndotonly``: the same, YNNPACK for matmuls only (no YNN reduce fusions).
* ``flax-noynn``: the same, no YNNPACK at all (Eigen convolutions and matmuls).
* ``flax-rspool``: nn.Conv (Eigen), reshape-mean pooling (``fastconv.avg_pool2``):
  the recommended training configuration.
* ``flax-donate``: ``flax-noynnconv`` with params and optimizer state donated.
* ``fast``: conv1+ReLU+pool as one space-to-depth matmul (``fastconv.ConvReluAvgPool``),
  conv2 nn.Conv (Eigen), reshape-mean pooling: fastest for inference
  (``--inference``), not for training.
* ``fast-ynnconv``, ``fast-noynn``, ``fast-ynndotonly``: ``fast`` with the default
  YNNPACK convolutions / no YNNPACK / YNNPACK matmuls only.
* ``fast-windowpool``: ``fast`` with nn.avg_pool (reduce-window) after conv2.
* ``patch``: both convs as im2col + matmul (``fastconv.PatchConv``).
* ``fast-donate``, ``fast-host``, ``fast-bf16``: ``fast`` with donated state / fed
  host-sliced numpy batches (no device gather) / computing in bfloat16.
* ``model:NAME``: ``shearbridge.models.get_model(NAME)`` with the recommended
  compiler options (to re-measure after integration).

The process-level settings (huge-page malloc, XLA_FLAGS, CPU pinning) cannot
change inside one process: compare them by running the script several times,
alternating, e.g. ``env GLIBC_TUNABLES=glibc.malloc.hugetlb=1 taskset -c 1 ...``.

FLOPs per sample are counted analytically from the layer shapes (forward:
conv ``2 H W K^2 Cin Cout``, dense ``2 Nin Nout``; backward: twice the forward,
except the first layer's input gradient, which is not computed) and compared
with XLA's ``cost_analysis()`` of the baseline step. Rates use the *baseline*
FLOP count for every variant (useful work, not the extra multiply-adds a
variant does).

Timings: wall clock (what a build waits for) and process CPU time (less
sensitive to other processes when run under ``taskset -c N``). Medians and
best-of are both reported; the load average is recorded per round.
Example: ``tools/perf/train_step_bench.py --batch 64 128 256 512 --rounds 9 --json out.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from shearbridge.models.fastconv import (  # noqa: E402  (after the sys.path line)
    ConvReluAvgPool,
    PatchConv,
    avg_pool2,
    gather_batch,
)
from shearbridge.models.enhanced import EnhancedGalaxyNN  # noqa: E402
from shearbridge.train.runtime import recommended_compiler_options  # noqa: E402

STAMP = 53
N_OUT = 4
YNN = "xla_cpu_experimental_ynn_fusion_type"
NO_YNN_CONV = recommended_compiler_options()
NO_YNN = {YNN: ""}
YNN_DOT_ONLY = {YNN: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


class FastEnhanced(nn.Module):
    """EnhancedGalaxyNN, same parameter tree, fast layers (see shearbridge.models.fastconv)."""

    n_outputs: int = N_OUT
    conv1: str = "s2d"  # "s2d" | "patch" | "lax"
    conv2: str = "lax"  # "lax" | "patch"
    pool2: str = "reshape"  # "reshape" (avg_pool2) | "window" (nn.avg_pool)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x[..., None]
        if self.conv1 == "s2d":
            x = ConvReluAvgPool(16, 3, name="conv1")(x)
        elif self.conv1 == "lax":
            x = avg_pool2(nn.relu(nn.Conv(16, (3, 3), padding="SAME", name="conv1")(x)))
        else:
            x = avg_pool2(nn.relu(PatchConv(16, (3, 3), name="conv1")(x)))
        conv2 = nn.Conv if self.conv2 == "lax" else PatchConv
        x = nn.relu(conv2(32, (3, 3), padding="SAME", name="conv2")(x))
        x = (
            avg_pool2(x)
            if self.pool2 == "reshape"
            else nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")
        )
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(128, name="dense1")(x))
        return nn.Dense(self.n_outputs, name="out")(x)


def analytic_flops(stamp: int = STAMP) -> dict[str, float]:
    """FLOPs per sample of EnhancedGalaxyNN (forward and forward+backward)."""
    h1, h2, h3 = stamp, stamp // 2, stamp // 4
    layers = {
        "conv1": 2 * h1 * h1 * 9 * 1 * 16,
        "conv2": 2 * h2 * h2 * 9 * 16 * 32,
        "dense1": 2 * (h3 * h3 * 32) * 128,
        "out": 2 * 128 * N_OUT,
    }
    fwd = sum(layers.values())
    # backward: weight gradient (1x) + input gradient (1x), none for the input layer's input
    train = fwd + 2 * fwd - layers["conv1"]
    return {
        "forward": float(fwd),
        "train": float(train),
        **{k: float(v) for k, v in layers.items()},
    }


def make_step(
    model: nn.Module, tx: optax.GradientTransformation, *, bf16: bool = False, host: bool = False
):
    """The training step of train.py: MSE loss, AdamW; batch by index (or given)."""

    def loss_fn(p, x, y):
        if bf16:
            p = jax.tree.map(lambda a: a.astype(jnp.bfloat16), p)
            x = x.astype(jnp.bfloat16)
        pred = model.apply({"params": p}, x).astype(jnp.float32)
        return jnp.mean((pred - y) ** 2)

    def update(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    if host:
        return update

    def step(params, opt_state, images, targets, idx):
        return update(params, opt_state, gather_batch(images, idx), gather_batch(targets, idx))

    return step


def variants() -> dict[str, dict[str, Any]]:
    """name -> {model, compiler options, step options}."""
    flax_m, fast_m = EnhancedGalaxyNN(N_OUT), FastEnhanced()
    return {
        "flax": {"model": flax_m, "opts": None},
        "flax-noynnconv": {"model": flax_m, "opts": NO_YNN_CONV},
        "flax-ynndotonly": {"model": flax_m, "opts": YNN_DOT_ONLY},
        "flax-noynn": {"model": flax_m, "opts": NO_YNN},
        "flax-rspool": {"model": FastEnhanced(conv1="lax"), "opts": NO_YNN_CONV},
        "flax-donate": {"model": flax_m, "opts": NO_YNN_CONV, "donate": True},
        "fast": {"model": fast_m, "opts": NO_YNN_CONV},
        "fast-ynnconv": {"model": fast_m, "opts": None},
        "fast-windowpool": {"model": FastEnhanced(pool2="window"), "opts": NO_YNN_CONV},
        "fast-noynn": {"model": fast_m, "opts": NO_YNN},
        "fast-ynndotonly": {"model": fast_m, "opts": YNN_DOT_ONLY},
        "patch": {"model": FastEnhanced(conv1="patch", conv2="patch"), "opts": NO_YNN_CONV},
        "fast-donate": {"model": fast_m, "opts": NO_YNN_CONV, "donate": True},
        "fast-host": {"model": fast_m, "opts": NO_YNN_CONV, "host": True},
        "fast-bf16": {"model": fast_m, "opts": NO_YNN_CONV, "bf16": True},
    }


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    return time.perf_counter() - w, time.process_time() - c


def check_equal(
    models: dict[str, nn.Module], params: Any, x: jax.Array, rtol: float = 1e-4
) -> dict[str, float]:
    """Max relative difference of predictions and gradients to the first model (float32)."""
    ref_name, ref = next(iter(models.items()))
    out = {}
    for name, m in models.items():
        pred = m.apply({"params": params}, x)
        grads = jax.grad(lambda p, m=m: jnp.sum(m.apply({"params": p}, x) ** 2))(params)
        ref_pred = ref.apply({"params": params}, x)
        ref_grads = jax.grad(lambda p: jnp.sum(ref.apply({"params": p}, x) ** 2))(params)
        rel = [float(jnp.max(jnp.abs(pred - ref_pred)) / jnp.max(jnp.abs(ref_pred)))]
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
            rel.append(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30)))
        out[name] = max(rel)
        if out[name] > rtol:
            raise AssertionError(f"{name} differs from {ref_name} by {out[name]:.2e} (> {rtol})")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    table = variants()
    names = list(table) if args.variants == "all" else args.variants.split(",")
    for name in names:
        if name.startswith("model:"):
            from shearbridge.config import SimConfig
            from shearbridge.models import bind_data_kwargs, get_model

            kwargs = bind_data_kwargs(name[6:], {}, SimConfig())  # the default simulation's PSF
            table[name] = {"model": get_model(name[6:], N_OUT, **kwargs), "opts": NO_YNN_CONV}
        elif name not in table:
            raise SystemExit(f"unknown variant {name!r}; known: {sorted(table)} or model:NAME")
    rng = np.random.default_rng(args.seed)
    images_np = rng.normal(size=(args.n_data, STAMP, STAMP)).astype(np.float32)
    targets_np = rng.normal(size=(args.n_data, N_OUT)).astype(np.float32)
    images, targets = jnp.asarray(images_np), jnp.asarray(targets_np)
    tx = optax.adamw(1e-3, weight_decay=1e-4)
    params = EnhancedGalaxyNN(N_OUT).init(jax.random.PRNGKey(args.seed), images[:1])["params"]
    opt_state = tx.init(params)
    check = {"flax": EnhancedGalaxyNN(N_OUT)} | {n: table[n]["model"] for n in names}
    max_rel = check_equal(check, params, images[:8])

    flops = analytic_flops()
    jobs: dict[tuple[str, int], dict[str, Any]] = {}
    xla_flops = {}
    for name in names:
        v = table[name]
        step = make_step(v["model"], tx, bf16=v.get("bf16", False), host=v.get("host", False))
        for b in args.batch:
            idx0 = np.arange(b, dtype=np.int32)
            margs = (
                (images_np[idx0], targets_np[idx0])
                if v.get("host")
                else (images, targets, jnp.asarray(idx0))
            )
            jitted = jax.jit(step, donate_argnums=(0, 1) if v.get("donate") else ())
            lowered = jitted.lower(params, opt_state, *margs)
            t0 = time.perf_counter()
            compiled = (
                lowered.compile(compiler_options=v["opts"]) if v["opts"] else lowered.compile()
            )
            compile_s = time.perf_counter() - t0
            ca = compiled.cost_analysis()
            ca = ca[0] if isinstance(ca, list) else ca
            xla_flops[(name, b)] = float(ca.get("flops", float("nan"))) / b
            state = {"p": jax.tree.map(jnp.array, params), "o": jax.tree.map(jnp.array, opt_state)}
            jobs[(name, b)] = {
                "fn": compiled,
                "state": state,
                "host": v.get("host", False),
                "b": b,
                "compile_s": compile_s,
            }

    def call(job: dict[str, Any]) -> Any:
        st, b = job["state"], job["b"]
        start = int(rng.integers(0, args.n_data - b))
        idx = np.arange(start, start + b, dtype=np.int32)
        if job["host"]:
            out = job["fn"](st["p"], st["o"], images_np[idx], targets_np[idx])
        else:
            out = job["fn"](st["p"], st["o"], images, targets, idx)
        st["p"], st["o"] = out[0], out[1]
        return out[2]

    for job in jobs.values():  # warm-up
        call(job)
    if args.profile:
        for key, job in jobs.items():
            print(f"== {key[0]} batch {key[1]}")
            profile_ops(job, call)
    a = jnp.asarray(rng.normal(size=(2048, 2048)).astype(np.float32))
    mm = jax.jit(jnp.dot)
    mm(a, a).block_until_ready()
    times: dict[Any, list[tuple[float, float]]] = {k: [] for k in jobs} | {"matmul": []}
    loads = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        times["matmul"].append(_timed(lambda: mm(a, a)))
        order = list(jobs) if r % 2 == 0 else list(jobs)[::-1]
        for key in order:
            job = jobs[key]
            wall = cpu = 0.0
            for _ in range(args.steps):
                w, c = _timed(lambda job=job: call(job))
                wall, cpu = wall + w, cpu + c
            times[key].append((wall / args.steps, cpu / args.steps))
    loads.append(os.getloadavg()[0])

    mm_flop = 2.0 * 2048**3
    mm_w = np.array([t[0] for t in times["matmul"]])
    mm_c = np.array([t[1] for t in times["matmul"]])
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "jax": jax.__version__,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "load_avg_per_round": loads,
        },
        "flops_per_sample": flops,
        "matmul_2048": {
            "gflops_wall_median": mm_flop / np.median(mm_w) / 1e9,
            "gflops_wall_best": mm_flop / mm_w.min() / 1e9,
            "gflops_per_cpu_s_median": mm_flop / np.median(mm_c) / 1e9,
        },
        "max_rel_diff_vs_flax": max_rel,
        "rows": [],
    }
    for (name, b), ts in ((k, v) for k, v in times.items() if k != "matmul"):
        w = np.array([t[0] for t in ts])
        c = np.array([t[1] for t in ts])
        sps = b / np.median(w)
        gf = sps * flops["train"] / 1e9
        result["rows"].append(
            {
                "variant": name,
                "batch": b,
                "samples_per_s_median": sps,
                "samples_per_s_best": b / w.min(),
                "samples_per_cpu_s_median": b / np.median(c),
                "gflops_median": gf,
                "pct_of_matmul_median": 100 * gf / result["matmul_2048"]["gflops_wall_median"],
                "pct_of_matmul_best": 100
                * (b / w.min() * flops["train"] / 1e9)
                / result["matmul_2048"]["gflops_wall_best"],
                "xla_flops_per_sample": xla_flops[(name, b)],
                "compile_s": jobs[(name, b)]["compile_s"],
                "wall_s_per_step": w.tolist(),
            }
        )
    return result


def print_table(res: dict[str, Any]) -> None:
    mm = res["matmul_2048"]
    f = res["flops_per_sample"]
    print(
        f"matmul 2048^2 f32: median {mm['gflops_wall_median']:.1f} GFLOP/s, "
        f"best {mm['gflops_wall_best']:.1f} (per CPU-second {mm['gflops_per_cpu_s_median']:.1f})"
    )
    print(
        f"FLOPs/sample: forward {f['forward'] / 1e6:.2f} M, "
        f"train step {f['train'] / 1e6:.2f} M (analytic)"
    )
    loads, cpus = res["machine"]["load_avg_per_round"], res["machine"]["cpus"]
    print(f"load average during run: {min(loads):.1f} .. {max(loads):.1f} on {cpus} CPUs")
    hdr = (
        f"{'variant':18s} {'batch':>5s} {'smp/s med':>9s} {'smp/s best':>10s} {'smp/cpu-s':>9s} "
        f"{'GFLOP/s':>7s} {'%mm med':>7s} {'%mm best':>8s} {'XLA MF/smp':>10s} {'maxrel':>8s}"
    )
    print(hdr)
    for row in res["rows"]:
        cells = [
            f"{row['variant']:18s}",
            f"{row['batch']:5d}",
            f"{row['samples_per_s_median']:9.0f}",
            f"{row['samples_per_s_best']:10.0f}",
            f"{row['samples_per_cpu_s_median']:9.0f}",
            f"{row['gflops_median']:7.1f}",
            f"{row['pct_of_matmul_median']:7.1f}",
            f"{row['pct_of_matmul_best']:8.1f}",
            f"{row['xla_flops_per_sample'] / 1e6:10.2f}",
            f"{res['max_rel_diff_vs_flax'][row['variant']]:8.1e}",
        ]
        print(" ".join(cells))


def profile_ops(
    job: dict[str, Any], call: Callable[[dict[str, Any]], Any], steps: int = 5, top: int = 25
) -> None:
    """Print the slowest XLA thunks of one compiled step (jax profiler; private jaxlib reader)."""
    import collections
    import re
    import tempfile

    from jaxlib import _profile_data  # private, but the only xplane reader shipped with jaxlib

    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        for _ in range(steps):
            jax.block_until_ready(call(job))
        jax.profiler.stop_trace()
        data = _profile_data.ProfileData.from_file(str(next(Path(d).rglob("*.xplane.pb"))))
    total: collections.Counter[str] = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            if "XLA" in line.name or "CpuClient" in line.name:
                for ev in line.events:
                    total[ev.name] += ev.duration_ns
    hlo = job["fn"].as_text()
    entry = hlo[hlo.find("ENTRY") :]
    shapes = dict(re.findall(r"%([\w.\-]+) = (\S+) ", entry))
    bodies = dict(re.findall(r"\n%([\w.\-]+) \([^\n]*\{\n(.*?)\n\}", hlo, re.DOTALL))
    calls = dict(re.findall(r"%([\w.\-]+) = .*?calls=%([\w.\-]+)", entry))
    step_ns = total.pop("ThunkExecutor::Execute", 0) / steps
    print(
        f"profile: {step_ns / 1e6:.1f} ms per step (profiled; absolute times inflated by tracing)"
    )
    for name, ns in total.most_common(top):
        if name not in shapes:
            continue
        ops = set(re.findall(r"= \S+ (\w[\w\-]*)\(", bodies.get(calls.get(name, ""), ""))) - {
            "parameter",
            "constant",
        }
        ms = ns / steps / 1e6
        print(f"  {ms:8.2f} ms  {name:30s} {shapes[name]:28s} {','.join(sorted(ops))[:70]}")


def run_inference(args: argparse.Namespace) -> dict[str, Any]:
    """Forward passes only (as ``train.predict`` runs them): samples/s per variant and batch."""
    table = variants()
    names = list(table) if args.variants == "all" else args.variants.split(",")
    rng = np.random.default_rng(args.seed)
    params = EnhancedGalaxyNN(N_OUT).init(
        jax.random.PRNGKey(args.seed), jnp.zeros((1, STAMP, STAMP))
    )["params"]
    fns, times = {}, {}
    for name in names:
        v = table[name]
        for b in args.batch:
            x = jnp.asarray(rng.normal(size=(b, STAMP, STAMP)).astype(np.float32))
            lowered = jax.jit(lambda p, u, m=v["model"]: m.apply({"params": p}, u)).lower(params, x)
            fn = lowered.compile(compiler_options=v["opts"]) if v["opts"] else lowered.compile()
            fn(params, x).block_until_ready()
            fns[(name, b)], times[(name, b)] = (fn, x), []
    for _ in range(args.rounds):
        for key, (fn, x) in fns.items():
            times[key].append(_timed(lambda fn=fn, x=x: fn(params, x)))
    rows = []
    for (name, b), ts in times.items():
        w = np.array([t[0] for t in ts])
        rows.append(
            {
                "variant": name,
                "batch": b,
                "samples_per_s_median": b / np.median(w),
                "samples_per_s_best": b / w.min(),
                "samples_per_cpu_s_median": b / np.median([t[1] for t in ts]),
            }
        )
        r = rows[-1]
        print(
            f"inference {name:18s} batch {b:4d}: {r['samples_per_s_median']:7.0f} samples/s "
            f"median, {r['samples_per_s_best']:7.0f} best, "
            f"{r['samples_per_cpu_s_median']:7.0f} per CPU-second"
        )
    return {"inference": rows, "forward_flops_per_sample": analytic_flops()["forward"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, nargs="+", default=[128])
    p.add_argument(
        "--variants",
        default="flax,flax-noynnconv,flax-rspool",
        help="comma-separated (see module docstring)",
    )
    p.add_argument(
        "--rounds", type=int, default=7, help="interleaved rounds (one timing per variant each)"
    )
    p.add_argument("--steps", type=int, default=3, help="steps per timing (averaged)")
    p.add_argument("--n-data", type=int, default=4096, help="dataset size held on the device")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument(
        "--profile", action="store_true", help="print the slowest XLA ops of each variant first"
    )
    p.add_argument(
        "--malloc",
        action="store_true",
        help="call shearbridge.train.runtime.configure_malloc() first",
    )
    p.add_argument(
        "--inference", action="store_true", help="time forward passes only (predict), not training"
    )
    args = p.parse_args(argv)
    if args.inference:
        res = run_inference(args)
        if args.json:
            from shearbridge.io import write_json

            write_json(args.json, res)
        return 0
    if args.malloc:
        from shearbridge.train.runtime import configure_malloc

        print(f"configure_malloc(): {configure_malloc()}")
    res = run(args)
    res["machine"]["configure_malloc"] = bool(args.malloc)
    res["machine"]["malloc_env"] = {
        k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "GLIBC_TUNABLES"))
    }
    print_table(res)
    if args.json:
        from shearbridge.io import write_json

        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

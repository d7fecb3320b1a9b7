"""The timing study's timed units: one :class:`Job` per method and :func:`interleaved_rates`.

A job is a network's inference, an estimator's measurement, a network's training step (the step
``train.py`` runs, compiled the same way, with its FLOPs per sample from XLA's cost analysis) or
the machine's matrix-product yardstick; :func:`interleaved_rates` times them in rounds of
alternating order. :mod:`shearbridge.steps.timing` builds the jobs of a profile, times them and
writes the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from shearbridge.config import Profile, seeds
from shearbridge.estimators.network import NETWORK_BATCH
from shearbridge.layout import Layout
from shearbridge.runs import method_estimator
from shearbridge.steps.measure import progress_bar

__all__ = [
    "Job",
    "interleaved_rates",
    "load_network",
    "inference_job",
    "estimator_job",
    "train_step_job",
    "matmul_job",
]


@dataclass
class Job:
    """One timed unit: ``fn()`` processes ``per_call`` galaxies (or samples) and blocks."""

    name: str
    per_call: int
    fn: Callable[[], Any]


def interleaved_rates(jobs: list[Job], rounds: int) -> dict[str, list[float]]:
    """Per-round rates (``per_call`` / wall seconds) of every job, alternating the order."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"job names must be unique, got {names}")
    rates: dict[str, list[float]] = {j.name: [] for j in jobs}
    with progress_bar(rounds * len(jobs), "timing", unit="call") as bar:
        for r in range(rounds):
            for job in jobs if r % 2 == 0 else jobs[::-1]:
                t0 = time.perf_counter()
                job.fn()
                rates[job.name].append(job.per_call / (time.perf_counter() - t0))
                bar.update(1)  # outside the timed call
    return rates


def load_network(name: str, profile: Profile, sigma: float, sim: Any) -> dict[str, Any]:
    """Model, parameters and label statistics of experiment ``name`` at ``sigma``.

    The trained ``model.msgpack`` when it exists; otherwise freshly initialised
    parameters (speed does not depend on the weights; accuracy is then not recorded).
    """
    import jax

    from shearbridge.config.experiments import get_experiment
    from shearbridge.models import (
        MODEL_FILE,
        bind_data_kwargs,
        get_model,
        init_params,
        load_trained,
    )

    exp = get_experiment(name, profile, sigma)
    tc = exp.train
    run = Layout(profile).run(name, sigma)
    if (run / MODEL_FILE).exists():
        t = load_trained(run)
        return {
            "exp": exp,
            "model": t.model,
            "params": t.params,
            "mean": t.label_mean,
            "std": t.label_std,
            "trained": True,
        }
    model = get_model(tc.model, tc.n_outputs, **bind_data_kwargs(tc.model, tc.model_kwargs, sim))
    params = init_params(model, jax.random.PRNGKey(tc.seed), sim.stamp_size_px)
    return {
        "exp": exp,
        "model": model,
        "params": params,
        "mean": None,
        "std": None,
        "trained": False,
    }


def inference_job(
    label: str, net: dict[str, Any], stamps: np.ndarray, truth: np.ndarray, checks: dict[str, Any]
) -> Job:
    from shearbridge.models import predict

    def fn() -> np.ndarray:
        out = predict(
            net["params"],
            net["model"],
            stamps,
            NETWORK_BATCH,
            label_mean=net["mean"],
            label_std=net["std"],
        )
        if net["trained"]:
            checks[label] = float(np.sqrt(np.mean((out[:, :2] - truth) ** 2)))
        return out

    return Job(label, len(stamps), fn)


def estimator_job(
    label: str,
    method: str,
    profile: Profile,
    stamps: np.ndarray,
    truth: np.ndarray,
    psf: np.ndarray,
    scale: float,
    sigma: float,
    checks: dict[str, Any],
) -> Job:
    est = method_estimator(method, profile, sigma)

    def fn() -> Any:
        res = est.measure(stamps, psf, scale, sigma)
        ok = (np.asarray(res.flags) == 0) & np.all(np.isfinite(res.g), axis=1)
        checks[label] = float(np.sqrt(np.mean((res.g[ok] - truth[ok]) ** 2))) if ok.any() else None
        return res

    return Job(label, len(stamps), fn)


def train_step_job(
    label: str, net: dict[str, Any], images: np.ndarray, targets: np.ndarray, steps: int, seed: int
) -> tuple[Job, dict[str, Any]]:
    """The training step of :mod:`shearbridge.train.optim` on ``images`` (compiled like
    train.py)."""
    import jax
    import jax.numpy as jnp

    from shearbridge.models.flops import compiled_flops
    from shearbridge.train.optim import compile_options, make_optimizer, train_step

    tc = net["exp"].train
    b = tc.batch_size
    if len(images) < b:
        raise ValueError(f"train-step timing needs >= {b} stamps, got {len(images)}")
    tx, _ = make_optimizer(tc, steps_per_epoch=100, epochs=10)
    model = net["model"]
    params = jax.tree.map(jnp.asarray, net["params"])
    state = {"p": params, "o": tx.init(params)}
    x, y = jnp.asarray(images), jnp.asarray(targets)
    rng = seeds.rng(seed, "timing_train_batches")
    lowered = jax.jit(partial(train_step, model, tx)).lower(
        state["p"], state["o"], x, y, np.zeros(b, np.int32)
    )
    exe = lowered.compile(compiler_options=compile_options())
    flops = compiled_flops(exe) / b

    def fn() -> Any:
        loss = None
        for _ in range(steps):
            idx = rng.choice(len(images), b, replace=False).astype(np.int32)
            state["p"], state["o"], loss = exe(state["p"], state["o"], x, y, idx)
        return float(loss)  # blocks

    return Job(label, steps * b, fn), {
        "batch_size": b,
        "steps_per_call": steps,
        "xla_flops_per_sample": flops,
    }


def matmul_job(n: int = 2048) -> Job:
    """A jitted n x n float32 matrix product: the machine's yardstick (FLOPs per call)."""
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)).astype(np.float32))
    mm = jax.jit(jnp.dot)
    return Job("matmul", 2 * n**3, lambda: mm(a, a).block_until_ready())

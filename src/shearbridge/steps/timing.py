"""Timing study: galaxies per second of every method, measured side by side in one process.

``python -m shearbridge timing --networks baseline --profile quick`` (the
Snakefile rule ``timing``) writes ``src/data/<profile>/timing.json`` with

* the hardware (CPU model, cores this process may use, memory, JAX backend
  and devices: a GPU number is never recorded as a CPU one), software
  versions, commit, and the process settings that change speed (XLA flags,
  malloc tunables);
* for each noise level of :func:`timing_noise_levels` (the lowest of the
  profile and ShearNet's "high" 1e-3, or the highest), the throughput of each
  method on the same comparison stamps (the first test objects): every
  network of ``networks`` (predictions in label units from host stamps, in
  batches of :data:`NETWORK_BATCH`, compilation excluded), the JAX ML fit,
  HSM REGAUSS and KSB, and ngmix where it is installed;
* the training-step throughput of every network (the step ``train.py`` runs,
  same compiler settings), its FLOPs per sample from XLA's cost analysis, and
  the rate of a 2048^2 float32 matrix product measured in the same rounds,
  hence the step's fraction of the machine's matmul rate;
* speed-ups of each network over the ML fit and REGAUSS, from the ratios
  measured within each round (so shared load from other processes cancels).

Methods are timed in rounds, in alternating order (A B C ..., then ... C B A);
each entry is the median over rounds with a robust spread (1.4826 x the median
absolute deviation of a single round) and the error of the median
(1.2533 x spread / sqrt(rounds)). Every method is called once before the
rounds (JAX compiles then); results are host arrays, so each timed call
includes waiting for the computation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import paths, provenance, study
from shearbridge.config import Profile, noise_tag, seeds
from shearbridge.errors import ConfigError
from shearbridge.estimators.network import NETWORK_BATCH
from shearbridge.io import write_json
from shearbridge.models.flops import compiled_flops
from shearbridge.stats.resample import ratio_stats, robust_stats
from shearbridge.steps.measure import method_estimator, progress_bar

__all__ = [
    "NETWORK_BATCH",
    "TIMING_FILE",
    "Job",
    "robust_stats",
    "ratio_stats",
    "timing_noise_levels",
    "timing_path",
    "interleaved_rates",
    "run_timing",
]

TIMING_FILE = "timing.json"


@dataclass
class Job:
    """One timed unit: ``fn()`` processes ``per_call`` galaxies (or samples) and blocks."""

    name: str
    per_call: int
    fn: Callable[[], Any]


def timing_path(profile: Profile) -> Path:
    return paths.profile_dir(profile) / TIMING_FILE


def timing_noise_levels(profile: Profile) -> list[float]:
    """The registry's timing levels: the lowest noise and ShearNet's "high" 1e-3 (else the highest)."""
    return list(study.study_noise(profile, "timing"))


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


# --------------------------------------------------------------------------- jobs


def _network(name: str, profile: Profile, sigma: float, sim: Any) -> dict[str, Any]:
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
    run = paths.run_dir(name, sigma, profile)
    if (run / MODEL_FILE).exists():
        t = load_trained(run)
        return {"exp": exp, "model": t.model, "params": t.params, "mean": t.label_mean,
                "std": t.label_std, "trained": True}
    model = get_model(tc.model, tc.n_outputs, **bind_data_kwargs(tc.model, tc.model_kwargs, sim))
    params = init_params(model, jax.random.PRNGKey(tc.seed), sim.stamp_size_px)
    return {"exp": exp, "model": model, "params": params, "mean": None, "std": None,
            "trained": False}


def _inference_job(label: str, net: dict[str, Any], stamps: np.ndarray, truth: np.ndarray,
                   checks: dict[str, Any]) -> Job:
    from shearbridge.models import predict

    def fn() -> np.ndarray:
        out = predict(net["params"], net["model"], stamps, NETWORK_BATCH,
                      label_mean=net["mean"], label_std=net["std"])
        if net["trained"]:
            checks[label] = float(np.sqrt(np.mean((out[:, :2] - truth) ** 2)))
        return out

    return Job(label, len(stamps), fn)


def _estimator_job(label: str, method: str, profile: Profile, stamps: np.ndarray,
                   truth: np.ndarray, psf: np.ndarray, scale: float, sigma: float,
                   checks: dict[str, Any]) -> Job:
    est = method_estimator(method, profile, sigma)

    def fn() -> Any:
        res = est.measure(stamps, psf, scale, sigma)
        ok = (np.asarray(res.flags) == 0) & np.all(np.isfinite(res.g), axis=1)
        checks[label] = float(np.sqrt(np.mean((res.g[ok] - truth[ok]) ** 2))) if ok.any() else None
        return res

    return Job(label, len(stamps), fn)


def _train_step_job(label: str, net: dict[str, Any], images: np.ndarray, targets: np.ndarray,
                    steps: int, seed: int) -> tuple[Job, dict[str, Any]]:
    """The training step of :mod:`shearbridge.train.optim` on ``images`` (compiled like train.py)."""
    import jax
    import jax.numpy as jnp

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
        state["p"], state["o"], x, y, np.zeros(b, np.int32))
    exe = lowered.compile(compiler_options=compile_options())
    flops = compiled_flops(exe) / b

    def fn() -> Any:
        loss = None
        for _ in range(steps):
            idx = rng.choice(len(images), b, replace=False).astype(np.int32)
            state["p"], state["o"], loss = exe(state["p"], state["o"], x, y, idx)
        return float(loss)  # blocks

    return Job(label, steps * b, fn), {"batch_size": b, "steps_per_call": steps,
                                       "xla_flops_per_sample": flops}


def _matmul_job(n: int = 2048) -> Job:
    """A jitted n x n float32 matrix product: the machine's yardstick (FLOPs per call)."""
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)).astype(np.float32))
    mm = jax.jit(jnp.dot)
    return Job("matmul", 2 * n**3, lambda: mm(a, a).block_until_ready())


# --------------------------------------------------------------------------- the study


def _hardware() -> dict[str, Any]:
    import jax

    hw = provenance.hardware()
    hw["backend"] = jax.default_backend()
    hw["devices"] = [getattr(d, "device_kind", d.platform) for d in jax.devices()]
    hw["cores_used"] = provenance.n_cores()  # this process's affinity (after --threads)
    hw["cores_machine"] = os.cpu_count()
    return hw


def run_timing(profile: Profile, networks: list[str], *, repeats: int = 7,
               n_galaxies: int = 256, train_steps: int = 4,
               classical: list[str] | None = None) -> Path:
    """Time every method side by side; write ``src/data/<profile>/timing.json`` atomically.

    Parameters
    ----------
    profile : Profile
        Whose test stamps, trained networks and data folder to use.
    networks : list of str
        Experiment names (e.g. ``["baseline"]``); each is timed for inference
        and for its training step.
    repeats : int
        Rounds; every method is timed once per round and noise level.
    n_galaxies : int
        Stamps per timed call of a classical method (at most ``profile.n_crlb``);
        networks take ``4 * NETWORK_BATCH`` per call (or all comparison stamps).
    train_steps : int
        Training steps per timed call.
    classical : list of str, optional
        Classical methods to time (default: the registry's ``timing`` study, those
        that are installed).

    Returns
    -------
    Path
        The written ``timing.json``.
    """
    from shearbridge.sim.datasets import load_dataset

    if not networks:
        raise ConfigError("run_timing needs at least one network name")
    if repeats < 3:
        raise ConfigError(f"repeats must be >= 3 for a spread, got {repeats}")
    ds = load_dataset("test", profile)
    psf, scale = np.asarray(ds.psf), ds.sim.pixel_scale_arcsec
    n_cl = min(n_galaxies, profile.n_crlb, len(ds))
    n_net = min(4 * NETWORK_BATCH, len(ds))
    known = study.names("timing", kind="classical", available_only=False)
    if classical is not None and (unknown := sorted(set(classical) - set(known))):
        raise ConfigError(f"unknown classical methods {unknown}; known: {known}")
    available = study.names("timing", kind="classical")
    methods = [m for m in (known if classical is None else classical) if m in available]
    # a network trained once for every level (psfnet) is timed through its estimator, in network
    # batches, told the PSF image and noise as any estimator; it has no per-level training step
    once = [n for n in networks if study.trained_once(n)]
    networks, methods = [n for n in networks if n not in once], once + methods
    levels = timing_noise_levels(profile)
    checks: dict[str, Any] = {}
    jobs: list[Job] = [_matmul_job()]
    step_info: dict[str, dict[str, Any]] = {}
    nets = {n: {noise_tag(s): _network(n, profile, s, ds.sim) for s in levels} for n in networks}
    for sigma in levels:
        tag = noise_tag(sigma)
        images = ds.images(sigma)
        truth = np.asarray(ds.targets(2), np.float64)
        for n in networks:
            jobs.append(_inference_job(f"{n}@{tag}", nets[n][tag], images[:n_net], truth[:n_net], checks))
        for m in methods:
            n = n_net if study.run_of(m) or m in once else n_cl  # fitted methods: network batches
            jobs.append(_estimator_job(f"{m}@{tag}", m, profile, images[:n], truth[:n], psf,
                                       scale, sigma, checks))
    for n in networks:  # one training step per network, at the highest timed noise level
        net = nets[n][noise_tag(levels[-1])]
        k = net["exp"].train.n_outputs
        job, info = _train_step_job(f"train:{n}", net, ds.images(levels[-1]),
                                    np.asarray(ds.targets(k), np.float32), train_steps, profile.seed)
        jobs.append(job)
        step_info[n] = info
    t0 = time.perf_counter()
    for job in jobs:  # compile / warm up
        job.fn()
    warm_s = time.perf_counter() - t0
    rates = interleaved_rates(jobs, repeats)

    mm = robust_stats(np.asarray(rates["matmul"]) / 1e9)
    hardware = _hardware()
    jax_device = hardware["backend"] if hardware["backend"] == "cpu" else hardware["devices"][0]
    out: dict[str, Any] = {
        "profile": profile.name, "networks": list(networks), "methods": list(networks) + methods,
        "noise_levels": {noise_tag(s): s for s in levels}, "repeats": repeats,
        "galaxies_per_call": {"network": n_net, "classical": n_cl},
        "network_batch": NETWORK_BATCH, "warmup_s": warm_s,
        **provenance.record(), "hardware": hardware,
        "env": {k: os.environ.get(k, "") for k in ("XLA_FLAGS", "GLIBC_TUNABLES", "MALLOC_MMAP_MAX_")},
        "matmul_gflops": mm, "speed": {}, "speedup": {}, "train_step": {},
    }
    for sigma in levels:
        tag = noise_tag(sigma)
        per = {}
        for m in out["methods"]:
            per[m] = robust_stats(rates[f"{m}@{tag}"]) | {
                "rmse_g_timed": checks.get(f"{m}@{tag}"),
                "trained": nets[m][tag]["trained"] if m in nets else None,
                "kind": "network" if m in nets or m in once else "classical",
                "galaxies_per_call": n_net if (m in nets or m in once or study.run_of(m)) else n_cl,
                "device": jax_device if m in nets or m in once or m == "mlfit" else "cpu",
            }
        out["speed"][tag] = per
        out["speedup"][tag] = {
            f"{n}/{ref}": ratio_stats(rates[f"{n}@{tag}"], rates[f"{ref}@{tag}"])
            for n in networks + once for ref in study.SPEEDUP_REFERENCES if ref in methods
        }
    for n in networks:
        sps = rates[f"train:{n}"]
        flops = step_info[n]["xla_flops_per_sample"]
        pct = 100 * np.asarray(sps) * flops / np.asarray(rates["matmul"])  # paired per round
        out["train_step"][n] = robust_stats(sps) | step_info[n] | {
            "gflops": robust_stats(np.asarray(sps) * flops / 1e9),
            "pct_of_matmul": robust_stats(pct),
        }
    path = timing_path(profile)
    write_json(path, out)
    return path

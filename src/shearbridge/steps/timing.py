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
includes waiting for the computation. The timed units and the rounds are
:mod:`shearbridge.steps.timing_jobs`.
"""

from __future__ import annotations

import os
import time
from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import provenance, study
from shearbridge.layout import Layout
from shearbridge.config import Profile, noise_tag
from shearbridge.errors import ConfigError
from shearbridge.estimators.network import NETWORK_BATCH
from shearbridge.io import write_json
from shearbridge.stats.resample import ratio_stats, robust_stats
from shearbridge.steps.command import Command, add_profile, add_threads, profile_of
from shearbridge.steps.timing_jobs import (
    Job,
    estimator_job,
    inference_job,
    interleaved_rates,
    load_network,
    matmul_job,
    train_step_job,
)

__all__ = [
    "NETWORK_BATCH",
    "TIMING_FILE",
    "Job",
    "robust_stats",
    "ratio_stats",
    "timing_noise_levels",
    "interleaved_rates",
    "run_timing",
    "COMMANDS",
]

TIMING_FILE = "timing.json"


def timing_noise_levels(profile: Profile) -> list[float]:
    """The registry's timing levels.

    The lowest noise and ShearNet's "high" 1e-3 (else the highest).
    """
    return list(study.study_noise(profile, "timing"))


# --------------------------------------------------------------------------- the study


def _hardware() -> dict[str, Any]:
    import jax

    hw = provenance.hardware()
    hw["backend"] = jax.default_backend()
    hw["devices"] = [getattr(d, "device_kind", d.platform) for d in jax.devices()]
    hw["cores_used"] = provenance.n_cores()  # this process's affinity (after --threads)
    hw["cores_machine"] = os.cpu_count()
    return hw


def run_timing(
    profile: Profile,
    networks: list[str],
    *,
    repeats: int = 7,
    n_galaxies: int = 256,
    train_steps: int = 4,
    classical: list[str] | None = None,
) -> Path:
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
    jobs: list[Job] = [matmul_job()]
    step_info: dict[str, dict[str, Any]] = {}
    nets = {
        n: {noise_tag(s): load_network(n, profile, s, ds.sim) for s in levels} for n in networks
    }
    for sigma in levels:
        tag = noise_tag(sigma)
        images = ds.images(sigma)
        truth = np.asarray(ds.targets(2), np.float64)
        for n in networks:
            jobs.append(
                inference_job(f"{n}@{tag}", nets[n][tag], images[:n_net], truth[:n_net], checks)
            )
        for m in methods:
            n = n_net if study.run_of(m) or m in once else n_cl  # fitted methods: network batches
            jobs.append(
                estimator_job(
                    f"{m}@{tag}", m, profile, images[:n], truth[:n], psf, scale, sigma, checks
                )
            )
    for n in networks:  # one training step per network, at the highest timed noise level
        net = nets[n][noise_tag(levels[-1])]
        k = net["exp"].train.n_outputs
        job, info = train_step_job(
            f"train:{n}",
            net,
            ds.images(levels[-1]),
            np.asarray(ds.targets(k), np.float32),
            train_steps,
            profile.seed,
        )
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
        "profile": profile.name,
        "networks": list(networks),
        "methods": list(networks) + methods,
        "noise_levels": {noise_tag(s): s for s in levels},
        "repeats": repeats,
        "galaxies_per_call": {"network": n_net, "classical": n_cl},
        "network_batch": NETWORK_BATCH,
        "warmup_s": warm_s,
        **provenance.record(),
        "hardware": hardware,
        "env": {
            k: os.environ.get(k, "") for k in ("XLA_FLAGS", "GLIBC_TUNABLES", "MALLOC_MMAP_MAX_")
        },
        "matmul_gflops": mm,
        "speed": {},
        "speedup": {},
        "train_step": {},
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
            for n in networks + once
            for ref in study.SPEEDUP_REFERENCES
            if ref in methods
        }
    for n in networks:
        sps = rates[f"train:{n}"]
        flops = step_info[n]["xla_flops_per_sample"]
        pct = 100 * np.asarray(sps) * flops / np.asarray(rates["matmul"])  # paired per round
        out["train_step"][n] = (
            robust_stats(sps)
            | step_info[n]
            | {
                "gflops": robust_stats(np.asarray(sps) * flops / 1e9),
                "pct_of_matmul": robust_stats(pct),
            }
        )
    path = Layout(profile).timing()
    write_json(path, out)
    return path


def _arguments(p: ArgumentParser) -> None:
    add_profile(p)
    p.add_argument(
        "--networks",
        default="baseline",
        help="comma-separated networks to time (the study times: "
        + ",".join(study.names("timing", kind="network", available_only=False))
        + ")",
    )
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per method (median)")
    add_threads(p)


def _timing(args: Namespace) -> None:
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    print(run_timing(profile_of(args), networks, repeats=args.repeats))


COMMANDS = (
    Command(
        "timing",
        "galaxies/s of every method, side by side in one process (timing.json)",
        _arguments,
        _timing,
        fast_env=True,
    ),
)

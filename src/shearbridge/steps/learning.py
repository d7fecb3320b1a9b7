"""Learning curves against compute, from the parameter snapshots a run already wrote.

A run with ``save_every > 0`` leaves ``params_epochXXX.msgpack`` beside its
checkpoint (:mod:`shearbridge.train.loop`). :func:`learning_curve` evaluates every
snapshot on the comparison set of the profile (the first ``n_crlb`` test
galaxies, the set behind every RMSE/CRLB number of the paper) and records,
per snapshot, RMSE(g) and RMSE/RMS(CRLB) with bootstrap errors against the
training compute spent: sample-steps (samples x optimiser steps) and FLOPs
(sample-steps x the training FLOPs of one sample, i.e. three forward passes,
the forward FLOPs counted by XLA's cost analysis of the compiled forward pass).
No extra training happens here.

The comparison at equal compute is the summary's
(:func:`shearbridge.summaries.learning.matched_compute`).
"""

from __future__ import annotations

import re
from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge.layout import Layout
from shearbridge.config import Profile, seeds
from shearbridge.errors import MissingFileError
from shearbridge.io import read_json, write_json
from shearbridge.steps.command import Command, add_noise, add_profile, print_json, profile_of

__all__ = ["learning_curve", "snapshots", "COMMANDS"]

_SNAPSHOT = re.compile(r"params_epoch(\d{3,})\.msgpack$")
TRAIN_FLOPS_PER_FORWARD = 3.0  # forward + backward (about twice the forward) per sample


def snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every parameter snapshot in ``run_dir``, by epoch."""
    found = [
        (int(m.group(1)), p)
        for p in Path(run_dir).glob("params_epoch*.msgpack")
        if (m := _SNAPSHOT.search(p.name))
    ]
    return sorted(found)


def learning_curve(profile: Profile, experiment: str, sigma: float) -> dict[str, Any]:
    """Evaluate every snapshot of one run on the comparison set; write and return the curve.

    Raises
    ------
    FileNotFoundError
        The run has no snapshots (it was trained with ``save_every = 0``) or
        its log is missing.
    """
    from shearbridge.models import get_model, load_trained
    from shearbridge.models.flops import forward_flops
    from shearbridge.sim.datasets import load_dataset
    from shearbridge.stats.resample import ratio_with_error
    from shearbridge.results import load_crlb

    run = Layout(profile).run(experiment, sigma)
    snaps = snapshots(run)
    if not snaps:
        raise MissingFileError(
            f"no params_epochXXX.msgpack snapshots in {run}: "
            f"train {experiment!r} with save_every > 0"
        )
    losses = read_json(run / "losses.json")
    steps_at = {e["epoch"]: e["sample_steps"] for e in losses["epochs"]}
    ds = load_dataset("test", profile)
    n = profile.n_crlb
    images = ds.images(sigma)[:n]
    true = ds.targets(2)[:n]
    crlb = load_crlb(profile, sigma)
    first = load_trained(snaps[0][1])
    model = get_model(first.meta["model"], first.meta["n_outputs"], **first.meta["model_kwargs"])
    fwd = forward_flops(model, first.params, images.shape[-1], batch=64)
    points = []
    for epoch, path in snaps:
        pred = load_trained(path).predict(images, 256)[:, :2]
        rng = seeds.rng(profile.seed, "learning_bootstrap", epoch)
        stats = ratio_with_error(np.asarray(pred, np.float64) - true, crlb, rng, profile.bootstrap)
        sample_steps = int(steps_at[epoch])
        points.append(
            {
                "epoch": epoch,
                "sample_steps": sample_steps,
                "train_flops": sample_steps * TRAIN_FLOPS_PER_FORWARD * fwd,
                **stats,
            }
        )
    out = {
        "experiment": experiment,
        "noise_sigma": sigma,
        "profile": profile.name,
        "forward_flops": fwd,
        "train_flops_per_sample": TRAIN_FLOPS_PER_FORWARD * fwd,
        "n": int(n),
        "points": points,
    }
    write_json(Layout(profile).result("learning", experiment, sigma), out)
    return out


def _arguments(p: ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="experiment name (trained with save_every > 0)")
    add_noise(p)
    add_profile(p)


def _learning(args: Namespace) -> None:
    out = learning_curve(profile_of(args), args.config, args.noise)
    print_json({k: v for k, v in out.items() if k != "points"})


COMMANDS = (
    Command(
        "learning",
        "RMSE/CRLB of every snapshot of a run against training compute",
        _arguments,
        _learning,
    ),
)

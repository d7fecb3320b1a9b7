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

:func:`matched_compute` reads off a comparison at equal compute: each model's
ratio at the largest FLOP budget that all of them reached, interpolated
log-linearly between snapshots.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import paths
from shearbridge.config import Profile, noise_tag, seeds
from shearbridge.errors import MissingFileError
from shearbridge.io import read_json, write_json
from shearbridge.models.flops import forward_flops

__all__ = ["learning_curve", "learning_path", "matched_compute", "snapshots"]

_SNAPSHOT = re.compile(r"params_epoch(\d{3,})\.msgpack$")
TRAIN_FLOPS_PER_FORWARD = 3.0  # forward + backward (about twice the forward) per sample


def snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every parameter snapshot in ``run_dir``, by epoch."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("params_epoch*.msgpack")
             if (m := _SNAPSHOT.search(p.name))]
    return sorted(found)


def learning_path(profile: Profile, experiment: str, sigma: float) -> Path:
    return paths.results_dir(profile) / "learning" / experiment / f"noise{noise_tag(sigma)}.json"


def learning_curve(profile: Profile, experiment: str, sigma: float) -> dict[str, Any]:
    """Evaluate every snapshot of one run on the comparison set; write and return the curve.

    Raises
    ------
    FileNotFoundError
        The run has no snapshots (it was trained with ``save_every = 0``) or
        its log is missing.
    """
    from shearbridge.models import get_model, load_trained
    from shearbridge.sim.datasets import load_dataset
    from shearbridge.stats.resample import ratio_with_error
    from shearbridge.steps.crlb import load_crlb

    run = paths.run_dir(experiment, sigma, profile)
    snaps = snapshots(run)
    if not snaps:
        raise MissingFileError(
            f"no params_epochXXX.msgpack snapshots in {run}: train {experiment!r} with save_every > 0"
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
        points.append({"epoch": epoch, "sample_steps": sample_steps,
                       "train_flops": sample_steps * TRAIN_FLOPS_PER_FORWARD * fwd, **stats})
    out = {"experiment": experiment, "noise_sigma": sigma, "profile": profile.name,
           "forward_flops": fwd, "train_flops_per_sample": TRAIN_FLOPS_PER_FORWARD * fwd,
           "n": int(n), "points": points}
    write_json(learning_path(profile, experiment, sigma), out)
    return out


def matched_compute(curves: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each curve's RMSE/CRLB at the largest training-FLOP budget every curve reached.

    ``curves`` maps a name to a :func:`learning_curve` result. The ratio is
    interpolated linearly in log(ratio) against log(FLOPs) between the two
    snapshots around the budget (taken as is when the budget is a snapshot);
    its error is interpolated the same way.
    """
    if not curves:
        raise ValueError("matched_compute needs at least one learning curve")
    budget = min(max(p["train_flops"] for p in c["points"]) for c in curves.values())
    out: dict[str, Any] = {"train_flops": budget, "ratio": {}, "ratio_err": {}}
    for name, c in curves.items():
        f = np.log([p["train_flops"] for p in c["points"]])
        r = np.log([p["ratio"] for p in c["points"]])
        e = np.array([p["ratio_err"] for p in c["points"]])
        if np.log(budget) < f[0]:
            raise ValueError(f"{name}: first snapshot is beyond the common budget {budget:.3g} FLOPs")
        ratio = float(np.exp(np.interp(np.log(budget), f, r)))
        out["ratio"][name] = ratio
        out["ratio_err"][name] = float(np.interp(np.log(budget), f, e))
    return out

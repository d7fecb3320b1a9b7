"""Pipeline step: the adaptive-moment weight fractions, chosen on the validation split.

Issue 15, item 6.

Runs :func:`shearbridge.diagnosis.tuning.tune_weight_fractions` on the profile's training
set at every noise level of the grid: the trainer's own split (the shapenet
experiment's seed, ``profile.val_fraction``; :func:`shearbridge.steps.floor.fit_split`),
read-outs fitted on the first :data:`shearbridge.diagnosis.floor_plan.N_FIT` training-split
objects, scored on the whole validation split; no test galaxy is used. Writes
``src/data/<profile>/diagnosis/weight_fractions.json`` (``Layout.diagnosis``): the
validation table, the scores, the choice under the default score, the fractions
configured in :data:`shearbridge.models.moments.WEIGHT_FRACTIONS` and ``agrees``
(whether they are the choice). The paper's numbers (``src/scripts/num_floor.py``)
refuse to build when they do not agree. Run on its own::

    python -m shearbridge tune --profile quick
"""

from __future__ import annotations

import time
from pathlib import Path

from shearbridge.config import Profile, noise_tag
from shearbridge.io import write_json
from shearbridge.layout import Layout
from shearbridge.steps.command import profile_command
from shearbridge.diagnosis.floor_plan import N_FIT
from shearbridge.steps.floor import fit_split

__all__ = ["run_tuning", "COMMANDS"]


def run_tuning(profile: Profile, score: str = "bound") -> Path:
    """Choose the weight fractions on the validation split; write and return the path of the table
    (``Layout(profile).diagnosis("weight_fractions.json")``)."""
    from shearbridge.diagnosis.tuning import tune_weight_fractions
    from shearbridge.models.moments import WEIGHT_FRACTIONS
    from shearbridge.sim.datasets import load_dataset

    t0 = time.perf_counter()
    train = load_dataset("train", profile)
    _, _, seed = fit_split(len(train), profile)
    res = tune_weight_fractions(
        train,
        profile.noise_grid,
        train.sim.psf_sigma_px,
        profile.val_fraction,
        seed,
        score=score,
        n_fit=N_FIT,
    )
    current = [float(f) for f in WEIGHT_FRACTIONS]
    choice = [float(f) for f in res["choice"]]
    cands = list(dict.fromkeys(tuple(r["fractions"]) for r in res["table"]))
    out = {
        "profile": profile.name,
        "noise_grid": [float(s) for s in profile.noise_grid],
        "noise_tags": [noise_tag(s) for s in profile.noise_grid],
        "candidates": [list(c) for c in cands],
        "table": [
            {**r, "fractions": list(r["fractions"]), "noise_tag": noise_tag(r["noise_sigma"])}
            for r in res["table"]
        ],
        # scores as lists in candidate order (JSON has no tuple keys)
        "scores": {s: [v[c] for c in cands] for s, v in res["scores"].items()},
        "score": res["score"],
        "choice": choice,
        "choices": {s: list(c) for s, c in res["choices"].items()},
        "best_per_level": {noise_tag(s): list(c) for s, c in res["best_per_level"].items()},
        "current": current,
        "agrees": choice == current,
        "split_seed": seed,
        "val_fraction": float(profile.val_fraction),
        "wall_s": time.perf_counter() - t0,
    }
    path = Layout(profile).diagnosis("weight_fractions.json")
    write_json(path, out)
    return path


COMMANDS = (
    profile_command(
        "tune",
        "the adaptive-moment weight fractions, chosen on the "
        "validation split (weight_fractions.json)",
        run_tuning,
    ),
)

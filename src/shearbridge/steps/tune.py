"""Pipeline step: the adaptive-moment weight fractions, chosen on the validation split (issue 15, item 6).

Runs :func:`shearbridge.diagnosis.tuning.tune_weight_fractions` on the profile's training
set at every noise level of the grid: the trainer's own split (the shapenet
experiment's seed, ``profile.val_fraction``; :func:`shearbridge.steps.floor.fit_split`),
read-outs fitted on the first :data:`shearbridge.steps.floor.N_FIT` training-split
objects, scored on the whole validation split; no test galaxy is used. Writes
``src/data/<profile>/diagnosis/weight_fractions.json`` (:func:`tuning_path`): the
validation table, the scores, the choice under the default score, the fractions
configured in :data:`shearbridge.models.moments.WEIGHT_FRACTIONS` and ``agrees``
(whether they are the choice). The paper's numbers (``src/scripts/num_floor.py``)
refuse to build when they do not agree. Run on its own::

    python -m shearbridge.steps.tune --profile quick
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from shearbridge.config import Profile, get_profile, noise_tag
from shearbridge.io import write_json
from shearbridge.steps.floor import N_FIT, fit_split, tuning_path

__all__ = ["tuning_path", "run_tuning", "profile_main"]


def run_tuning(profile: Profile, score: str = "bound") -> Path:
    """Choose the weight fractions on the validation split; write and return :func:`tuning_path`."""
    from shearbridge.diagnosis.tuning import tune_weight_fractions
    from shearbridge.models.moments import WEIGHT_FRACTIONS
    from shearbridge.sim.datasets import load_dataset

    t0 = time.perf_counter()
    train = load_dataset("train", profile)
    _, _, seed = fit_split(len(train), profile)
    res = tune_weight_fractions(train, profile.noise_grid, train.sim.psf_sigma_px, profile.val_fraction, seed,
                                score=score, n_fit=N_FIT)
    current = [float(f) for f in WEIGHT_FRACTIONS]
    choice = [float(f) for f in res["choice"]]
    cands = list(dict.fromkeys(tuple(r["fractions"]) for r in res["table"]))
    out = {
        "profile": profile.name,
        "noise_grid": [float(s) for s in profile.noise_grid],
        "noise_tags": [noise_tag(s) for s in profile.noise_grid],
        "candidates": [list(c) for c in cands],
        "table": [{**r, "fractions": list(r["fractions"]), "noise_tag": noise_tag(r["noise_sigma"])}
                  for r in res["table"]],
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
    path = tuning_path(profile)
    write_json(path, out)
    return path


def profile_main(prog: str, doc: str | None, run: Callable[[Profile], Path], argv: list[str] | None) -> None:
    """The command line of a step run as a module with only ``--profile``: run it, print its output path."""
    ap = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n")[0])
    ap.add_argument("--profile", required=True, help="profile name, e.g. quick or paper")
    print(run(get_profile(ap.parse_args(argv).profile)))


def main(argv: list[str] | None = None) -> None:
    profile_main("python -m shearbridge.steps.tune", __doc__, run_tuning, argv)


if __name__ == "__main__":
    main()

"""What each ShapeNet ingredient buys: the ablation ladder and removals, summarised.

The ablation experiments (:data:`shearbridge.config.ablation.ABLATION_LADDER`, adding one
ingredient at a time to the baseline architecture, and
:data:`~shearbridge.config.ablation.ABLATION_REMOVALS`, removing one at a time from the final
model) are trained for a fraction of the profile's epochs
(:func:`shearbridge.config.ablation.ablation_epochs`) and measured by
:func:`shearbridge.steps.compare.run_method` on the comparison set, like every other method,
at the registry's ``ablation`` noise levels (:func:`ablation_sigmas`: the lowest and 1e-3).
:func:`ablation_summary` collects, per variant and noise level, RMSE(g) and RMSE/CRLB
(bootstrap errors from the comparison), the parameter count (the run's ``metrics.json``), the
forward cost in floating-point operations per galaxy (:func:`forward_flops`), the throughput,
the epochs and sample-steps used; and, per ladder step, the factor by which it lowers RMSE(g),
with a paired bootstrap error over the same galaxies. ``baseline`` and ``shapenet`` at the full
training budget are the reference rows.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from shearbridge import study
from shearbridge.layout import Layout
from shearbridge.config import Profile, SimConfig, noise_tag, seeds
from shearbridge.config.ablation import ABLATION_LADDER, ABLATION_REMOVALS
from shearbridge.config.experiments import get_experiment
from shearbridge.errors import MissingFileError
from shearbridge.io import read_json, write_json
from shearbridge.models.flops import FLOPS_METHOD
from shearbridge.stats.resample import paired_rmse_ratio
from shearbridge.results import load_measured

__all__ = [
    "references",
    "FLOPS_METHOD",
    "ablation_sigmas",
    "variants",
    "forward_flops",
    "paired_rmse_factor",
    "ablation_summary",
    "write_ablation_summary",
]


def references() -> list[tuple[str, str]]:
    """Full-budget networks shown next to the ablation variants: the registry's headline
    networks (``evaluate`` study), labelled ``"<label> (full budget)"``."""
    return [(m.name, f"{m.label} (full budget)") for m in study.methods("evaluate")]


def ablation_sigmas(profile: Profile) -> tuple[float, ...]:
    """Noise levels of the ablation (the registry's ``ablation`` study)."""
    return study.study_noise(profile, "ablation")


def variants() -> list[dict[str, str]]:
    """Every ablation experiment in display order: ``{"name", "label", "group"}``, ladder first."""
    return [{"name": n, "label": lab, "group": "ladder"} for n, lab, _ in ABLATION_LADDER] + [
        {"name": n, "label": lab, "group": "removal"} for n, lab, _ in ABLATION_REMOVALS
    ]


@functools.lru_cache(maxsize=64)
def forward_flops(experiment: str, profile: Profile, stamp_size_px: int) -> float:
    """Floating-point operations of one forward pass of ``experiment``'s network on one stamp.

    From XLA's cost analysis of the compiled, jitted batch-1 forward pass (see
    :data:`FLOPS_METHOD`); parameters are freshly initialised (the count depends only on
    their shapes). The noise level does not change the network, so it is fixed at the
    profile's lowest.
    """
    import jax

    from shearbridge.models import bind_data_kwargs, get_model, init_params
    from shearbridge.models.flops import forward_flops as model_flops

    exp = get_experiment(experiment, profile, profile.noise_grid[0])
    # the training data's PSF: the default simulation's (the FLOP count does not depend on its
    # width)
    model = get_model(
        exp.train.model,
        exp.train.n_outputs,
        **bind_data_kwargs(exp.train.model, exp.train.model_kwargs, SimConfig()),
    )
    params = init_params(model, jax.random.key(0), stamp_size_px)
    return model_flops(model, params, stamp_size_px, batch=1)


def paired_rmse_factor(
    err_a: np.ndarray, err_b: np.ndarray, rng: np.random.Generator, n_boot: int
) -> tuple[float, float]:
    """RMSE(a) / RMSE(b) over the same galaxies and both components, with a paired bootstrap error:
    :func:`shearbridge.stats.resample.paired_rmse_ratio` as ``(ratio, error)``."""
    r = paired_rmse_ratio(err_a, err_b, rng, n_boot)
    return r["ratio"], r["ratio_err"]


def _row(
    profile: Profile, name: str, label: str, group: str, sigmas: tuple[float, ...], flops: bool
) -> dict[str, Any]:
    from shearbridge.summaries.compare import load_result

    per_noise = {}
    n_params = None
    for sigma in sigmas:
        res = load_result(profile, name, sigma)
        metrics_path = Layout(profile).run(name, sigma) / "metrics.json"
        if not metrics_path.exists():
            raise MissingFileError(f"missing {metrics_path}: train {name} at noise {sigma:g} first")
        metrics = read_json(metrics_path)
        n_params = int(metrics["n_params"])
        per_noise[noise_tag(sigma)] = {
            "noise_sigma": sigma,
            **{
                k: float(res[k])
                for k in ("ratio", "ratio_err", "rmse_g", "rmse_g_err", "galaxies_per_s")
            },
            "n": int(res["n"]),
            "epochs_run": int(metrics["epochs_run"]),
            "sample_steps": int(metrics["sample_steps"]),
        }
    exp = get_experiment(name, profile, sigmas[0])
    row = {
        "name": name,
        "label": label,
        "group": group,
        "n_params": n_params,
        "epochs_planned": exp.epochs,
        "per_noise": per_noise,
    }
    if flops:  # the stamp size of the default simulation (the profiles do not change it)
        row["flops"] = forward_flops(name, profile, SimConfig().stamp_size_px)
    return row


def ablation_summary(profile: Profile, *, flops: bool = True) -> dict[str, Any]:
    """Every ablation variant and the two full-budget references at :func:`ablation_sigmas`.

    Reads ``results/compare/<name>/noise<tag>.json`` (+ ``.npz``) and
    ``runs/<name>/noise<tag>/metrics.json`` of the profile. ``flops=False`` skips the
    (compile-bound, ~1 s per network) operation count. Returns a JSON-able dict:
    ``rows`` (variants in ladder-then-removal order, then the references), ``steps``
    (per tag, each ladder step's RMSE factor previous/this with a paired bootstrap
    error), ``total`` (first over last ladder step), and the epochs used.
    """
    sigmas = ablation_sigmas(profile)
    tags = [noise_tag(s) for s in sigmas]
    rows = [_row(profile, v["name"], v["label"], v["group"], sigmas, flops) for v in variants()]
    rows += [_row(profile, n, lab, "reference", sigmas, flops) for n, lab in references()]
    ladder = [n for n, _, _ in ABLATION_LADDER]
    labels = {n: lab for n, lab, _ in ABLATION_LADDER}
    steps: dict[str, list[dict[str, Any]]] = {}
    total: dict[str, dict[str, float]] = {}
    for sigma, tag in zip(sigmas, tags):
        rng = seeds.rng(profile.seed, "ablation_bootstrap", int(round(-np.log10(sigma) * 100)))
        errs = {n: load_measured(profile, n, sigma)[:2] for n in ladder}
        steps[tag] = []
        for prev, this in zip(ladder[:-1], ladder[1:]):
            ok = errs[prev][1] & errs[this][1]
            f, e = paired_rmse_factor(errs[prev][0][ok], errs[this][0][ok], rng, profile.bootstrap)
            steps[tag].append(
                {"from": prev, "to": this, "label": labels[this], "factor": f, "factor_err": e}
            )
        ok = errs[ladder[0]][1] & errs[ladder[-1]][1]
        f, e = paired_rmse_factor(
            errs[ladder[0]][0][ok], errs[ladder[-1]][0][ok], rng, profile.bootstrap
        )
        total[tag] = {"factor": f, "factor_err": e}
    first = get_experiment(ladder[0], profile, sigmas[0])
    by_name = {r["name"]: r for r in rows}
    return {
        "profile": profile.name,
        "noise_grid": list(sigmas),
        "noise_tags": tags,
        "epochs_ablation": first.epochs,
        "epochs_full": get_experiment("shapenet", profile, sigmas[0]).epochs,
        "objects_ablation": first.train.max_objects or profile.n_train,
        "objects_full": profile.n_train,
        "sample_steps_ablation": by_name[ladder[0]]["per_noise"][tags[0]]["sample_steps"],
        "sample_steps_full": by_name["shapenet"]["per_noise"][tags[0]]["sample_steps"],
        "flops_method": FLOPS_METHOD if flops else None,
        "rows": rows,
        "steps": steps,
        "total": total,
        "definitions": {
            "ratio": "RMSE(g) over the RMS per-galaxy CRLB on the comparison set (bootstrap error)",
            "factor": "RMSE(g) of the previous ladder step over this one's, same galaxies "
            "(paired bootstrap)",
            "total": "RMSE(g) of the first ladder step over the last's (paired bootstrap)",
        },
    }


def write_ablation_summary(profile: Profile) -> None:
    """Write :func:`ablation_summary` to ``src/data/summary/ablation.json``."""
    from shearbridge import layout

    write_json(layout.summary("ablation.json"), ablation_summary(profile))

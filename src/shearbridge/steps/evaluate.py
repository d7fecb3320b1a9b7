"""Shear metrics with bootstrap errors, and the evaluation of a trained run.

Conventions: ``g`` is the reduced shear (ShearNet's label). The MSE here is the
true mean squared error ``mean((pred - true)**2)``, not ShearNet's half-MSE
(``optax.l2_loss``); RMSE is its square root. Per component the linear
response ``pred = (1 + m) * true + c`` is fitted by ordinary least squares
(slope ``1 + m``, offset ``c``), the usual multiplicative/additive bias
parametrisation (Heymans et al. 2006, MNRAS 368, 1323) applied per galaxy. Note that for an
MSE-trained estimator ``m`` measures shrinkage toward the label prior, not the
shear-response bias of paired simulations (that lives in ``estimators``).

Error bars are bootstrap standard errors: objects are resampled with
replacement ``n_boot`` times (the same resamples for every statistic, so the
errors of g1, g2 and the combined RMSE are consistent), from an explicit
``numpy.random.Generator``.
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shearbridge.config import seeds
from shearbridge.config.experiments import ExperimentConfig
from shearbridge.io import save_npz, write_json
from shearbridge.layout import Layout
from shearbridge.runs import require_trained
from shearbridge.steps.command import Command, add_experiment, experiment_of, print_json

if TYPE_CHECKING:  # JAX: imported where used, so that the command line starts fast
    from shearbridge.train.data import DatasetLike

__all__ = ["shear_metrics", "evaluate_run", "result_path", "COMMANDS"]

_STATS = ("mse", "rmse", "bias", "m", "c", "slope")


def _stats(pred: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics along the last axis: arrays (..., N) -> (...)."""
    err = pred - true
    mse = np.mean(err**2, axis=-1)
    tm, pm = true.mean(axis=-1, keepdims=True), pred.mean(axis=-1, keepdims=True)
    var_t = np.mean((true - tm) ** 2, axis=-1)
    cov = np.mean((true - tm) * (pred - pm), axis=-1)
    slope = cov / var_t
    offset = pm[..., 0] - slope * tm[..., 0]
    return {
        "mse": mse,
        "rmse": np.sqrt(mse),
        "bias": err.mean(axis=-1),
        "m": slope - 1.0,
        "c": offset,
        "slope": slope,
    }


def shear_metrics(
    pred_g: np.ndarray,
    true_g: np.ndarray,
    rng: np.random.Generator,
    n_boot: int,
    *,
    chunk: int = 64,
) -> dict[str, Any]:
    """Per-component accuracy and linear bias of shear estimates, with bootstrap errors.

    Parameters
    ----------
    pred_g, true_g : array, shape (N, 2)
        Estimated and true reduced shear (g1, g2) per object.
    rng : numpy.random.Generator
        Source of the bootstrap resamples.
    n_boot : int
        Number of bootstrap resamples (>= 2).
    chunk : int
        Resamples drawn at once (memory: chunk * N indices).

    Returns
    -------
    dict
        ``{"g1": {...}, "g2": {...}, "rmse_g", "rmse_g_err", "n", "n_boot"}``;
        each component holds ``mse, rmse, bias, m, c, slope`` (slope = 1 + m)
        and their bootstrap standard errors ``<name>_err``. ``rmse_g`` is
        ``sqrt((MSE(g1) + MSE(g2)) / 2)``.

    Raises
    ------
    ValueError
        Shapes differ or are not (N, 2), fewer than 3 objects, non-finite
        values, a constant true shear (no slope), or n_boot < 2.
    """
    pred = np.asarray(pred_g, np.float64)
    true = np.asarray(true_g, np.float64)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 2:
        raise ValueError(
            f"pred_g and true_g must both have shape (N, 2), got {pred.shape} and {true.shape}"
        )
    n = len(pred)
    if n < 3:
        raise ValueError(f"need at least 3 objects for shear metrics, got {n}")
    if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(true))):
        raise ValueError("pred_g or true_g contains NaN or inf")
    if np.any(np.ptp(true, axis=0) == 0):
        raise ValueError("a true shear component is constant: the slope is undefined")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")

    point = _stats(pred.T, true.T)  # each (2,)
    boot: dict[str, list[np.ndarray]] = {k: [] for k in _STATS}
    boot_rmse_g = []
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        s = _stats(pred.T[:, idx], true.T[:, idx])  # each (2, chunk)
        for k in _STATS:
            boot[k].append(s[k])
        boot_rmse_g.append(np.sqrt(s["mse"].mean(axis=0)))
    err = {k: np.concatenate(v, axis=1).std(axis=1, ddof=1) for k, v in boot.items()}

    out: dict[str, Any] = {}
    for j, name in enumerate(("g1", "g2")):
        out[name] = {}
        for k in _STATS:
            out[name][k] = float(point[k][j])
            out[name][f"{k}_err"] = float(err[k][j])
    out["rmse_g"] = float(np.sqrt(point["mse"].mean()))
    out["rmse_g_err"] = float(np.concatenate(boot_rmse_g).std(ddof=1))
    out["n"] = n
    out["n_boot"] = int(n_boot)
    return out


def result_path(experiment: ExperimentConfig, dataset_name: str) -> Path:
    """``results/<experiment>/noise<tag>.json`` (other test sets: ``noise<tag>_<dataset>.json``)."""
    other = dataset_name if dataset_name != experiment.test_dataset else None
    return Layout(experiment.profile).evaluation(experiment.name, experiment.noise_sigma, other)


def evaluate_run(
    workdir: str | Path,
    experiment: ExperimentConfig,
    test: DatasetLike | None = None,
    *,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Evaluate a trained run on a test set and write the results JSON.

    Parameters
    ----------
    workdir : path
        The run directory holding ``model.msgpack`` (best parameters).
    experiment : ExperimentConfig
        The experiment that was trained (noise level, profile, dataset names).
    test : Dataset-like, optional
        The test set; by default ``experiment.test_dataset`` of the profile.
        Its ``name`` attribute, if any, names the result file.

    Returns
    -------
    dict
        What was written to :func:`result_path` (plus ``"path"``): shear
        metrics with bootstrap errors (``profile.bootstrap`` resamples, seeded
        by ``profile.seed``), and MSE/RMSE/bias of every predicted target.
        Predictions and truths are saved beside it as ``<stem>_pred.npz``.
    """
    from shearbridge.models import TARGET_NAMES
    from shearbridge.train.metrics import column_metrics

    trained = require_trained(
        workdir, experiment.name, experiment.noise_sigma, experiment.profile.name
    )
    if test is None:
        from shearbridge.sim import (
            datasets as data,  # lazy: GalSim only when a dataset must be read
        )

        test = data.load_dataset(experiment.test_dataset, profile=experiment.profile)
    dataset_name = str(getattr(test, "name", experiment.test_dataset))
    n_out = int(trained.meta["n_outputs"])
    pred = trained.predict(test.images(experiment.noise_sigma), batch_size)
    true = np.asarray(test.targets(n_out), np.float64)
    rng = seeds.rng(experiment.profile.seed, "evaluate_bootstrap")
    result = {
        "experiment": experiment.name,
        "dataset": dataset_name,
        "noise_sigma": experiment.noise_sigma,
        "profile": experiment.profile.name,
        "model_epoch": trained.meta.get("epoch"),
        "run_hash": trained.meta.get("run_hash"),
        "n_test": len(true),
        "shear": shear_metrics(pred[:, :2], true[:, :2], rng, experiment.profile.bootstrap),
        "targets": column_metrics(pred, true, TARGET_NAMES[:n_out]),
    }
    path = result_path(experiment, dataset_name)
    write_json(path, result)
    save_npz(path.with_name(f"{path.stem}_pred.npz"), pred=pred, true=true)
    return result | {"path": str(path)}


def _arguments(p: ArgumentParser) -> None:
    add_experiment(p)
    p.add_argument("--workdir", type=Path, help="run directory (default as for train)")
    p.add_argument("--dataset", help="test dataset name (default: the experiment's test set)")


def _evaluate(args: Namespace) -> None:
    from shearbridge.steps.train import workdir_of

    exp = experiment_of(args)
    test = None
    if args.dataset:
        from shearbridge.sim.datasets import load_dataset

        test = load_dataset(args.dataset, profile=exp.profile)
    result = evaluate_run(workdir_of(args, exp), exp, test)
    print_json({"path": result["path"], "shear": result["shear"]})


COMMANDS = (Command("evaluate", "evaluate a trained run on a test set", _arguments, _evaluate),)

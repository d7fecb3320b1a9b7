"""What a run reports: test-set metrics (``metrics.json``) and JSON-safe logs (``losses.json``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from shearbridge.config.experiments import ExperimentConfig
from shearbridge.models import TARGET_NAMES, check_images, count_params, predict

__all__ = ["LOSSES", "METRICS", "column_metrics", "json_safe", "metrics_on_test_set"]

LOSSES, METRICS = "losses.json", "metrics.json"


def column_metrics(pred: np.ndarray, true: np.ndarray, names: tuple[str, ...]) -> dict[str, dict]:
    """Per-column true MSE, RMSE and mean bias (pred - true), in label units."""
    err = np.asarray(pred, np.float64) - np.asarray(true, np.float64)
    mse = np.mean(err**2, axis=0)
    return {
        name: {
            "mse": float(mse[i]),
            "rmse": float(np.sqrt(mse[i])),
            "bias": float(err[:, i].mean()),
        }
        for i, name in enumerate(names)
    }


def metrics_on_test_set(
    config: ExperimentConfig,
    st: dict,
    model: Any,
    mean: np.ndarray,
    std: np.ndarray,
    test_data: Any,
) -> dict:
    """Test-set metrics of the best parameters, in label units (the content of metrics.json)."""
    n_out = config.train.n_outputs
    images = check_images(test_data.images(config.noise_sigma))
    true = np.asarray(test_data.targets(n_out), np.float64)
    pred = predict(st["best_params"], model, images, 256, label_mean=mean, label_std=std)
    cols = column_metrics(pred, true, TARGET_NAMES[:n_out])
    return {
        "experiment": config.name,
        "noise_sigma": config.noise_sigma,
        "profile": config.profile.name,
        "n_params": count_params(st["best_params"]),
        "test": cols,
        "n_test": len(images),
        "rmse_g": float(np.sqrt((cols["g1"]["mse"] + cols["g2"]["mse"]) / 2)),
        "test_loss": float(np.mean(((pred - true) / std) ** 2)),
        "best_epoch": st["best_epoch"],
        "best_val_loss": st["best_val_loss"],
        "epochs_run": st["epoch"],
        "stopped_early": st["epoch"] < config.epochs,
        "sample_steps": st["history"][-1]["sample_steps"],
        "train_wall_s": st["wall_s"],
    }


def json_safe(obj: Any) -> Any:
    """Non-finite floats (a diverged loss) become None: JSON has no NaN."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj

"""A trained network, saved and loaded.

A trained network is saved as one msgpack file (:func:`save_model`): its
parameters, the label mean and standard deviation used to standardise the
targets (predictions are un-standardised with them), and a JSON ``meta``
record (model name, ``n_outputs``, ``model_kwargs`` (the data's PSF included), the
experiment, the epoch). :func:`load_trained` rebuilds the model by name from it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from flax import serialization

from shearbridge.errors import ConfigError, MissingFileError
from shearbridge.io import atomic_path
from shearbridge.models.predict import predict
from shearbridge.models.registry import get_model

__all__ = ["TARGET_NAMES", "MODEL_FILE", "Trained", "save_model", "load_trained"]

TARGET_NAMES = ("g1", "g2", "size_arcsec", "flux")  # label columns, in this order
MODEL_FILE = "model.msgpack"


@dataclass
class Trained:
    """A trained network: model, parameters, label statistics and provenance."""

    model: nn.Module
    params: Any
    label_mean: np.ndarray
    label_std: np.ndarray
    meta: dict

    def check_trained_for(
        self, experiment: str | None, noise_sigma: float, where: Any = ""
    ) -> None:
        """Refuse a model trained for another experiment or noise level (``meta`` says which)."""
        rec = self.meta.get("experiment", {})
        name, sigma = rec.get("name"), rec.get("noise_sigma")
        if experiment is not None and name is not None and name != experiment:
            raise ConfigError(f"{where} holds a model of experiment {name!r}, not {experiment!r}")
        if sigma is not None and not math.isclose(float(sigma), float(noise_sigma), rel_tol=1e-12):
            raise ConfigError(
                f"{where} holds a model trained at noise {sigma:g}, not {float(noise_sigma):g}: "
                f"train one for {float(noise_sigma):g} (python -m shearbridge train ... --noise "
                f"{float(noise_sigma):g})"
            )

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Predictions in label units (columns as :data:`TARGET_NAMES`)."""
        return predict(
            self.params,
            self.model,
            images,
            batch_size,
            label_mean=self.label_mean,
            label_std=self.label_std,
        )


def save_model(
    path: Path, params: Any, label_mean: np.ndarray, label_std: np.ndarray, meta: dict
) -> None:
    """Write parameters + label statistics + ``meta`` (model name, n_outputs, ...) atomically."""
    payload = {
        "params": jax.device_get(params),
        "label_mean": np.asarray(label_mean, np.float32),
        "label_std": np.asarray(label_std, np.float32),
        "meta": json.dumps(meta, sort_keys=True, default=str),
    }
    _write_bytes(path, serialization.msgpack_serialize(serialization.to_state_dict(payload)))


def load_trained(path: str | Path) -> Trained:
    """Load ``model.msgpack`` (or a run directory holding it, or a ``params_epochXXX`` snapshot)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise MissingFileError(f"missing trained model {path} (has training finished?)")
    raw = serialization.msgpack_restore(path.read_bytes())
    meta = json.loads(raw["meta"])
    model = get_model(meta["model"], meta["n_outputs"], **meta.get("model_kwargs", {}))
    return Trained(model, raw["params"], raw["label_mean"], raw["label_std"], meta)


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)

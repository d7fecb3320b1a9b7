"""Networks by name, and their saved, trained form.

A model is a ``flax.linen.Module`` whose ``__call__(x)`` maps stamps of shape
(B, S, S) to predictions of shape (B, n_outputs), and that accepts an
``n_outputs`` attribute. New models plug in by adding a line to
``_BUILTIN`` (``"name": "module:Class"``, imported lazily) or by calling
:func:`register_model` at run time.

A trained network is saved as one msgpack file (:func:`save_model`): its
parameters, the label mean and standard deviation used to standardise the
targets (predictions are un-standardised with them), and a JSON ``meta``
record (model name, ``n_outputs``, ``model_kwargs``, the experiment, the
epoch). :func:`load_trained` rebuilds the model by name from it, and
:func:`predict` runs any model in jitted, fixed-size batches.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from ..config import ConfigError
from ..io import atomic_path

__all__ = [
    "TARGET_NAMES",
    "MODEL_FILE",
    "get_model",
    "register_model",
    "model_names",
    "count_params",
    "check_images",
    "predict",
    "map_batches",
    "init_params",
    "Trained",
    "save_model",
    "load_trained",
]

TARGET_NAMES = ("g1", "g2", "size_arcsec", "flux")  # label columns, in this order
MODEL_FILE = "model.msgpack"

# name -> "module path:attribute" (relative to this package), imported on first use
_BUILTIN: dict[str, str] = {
    "enhanced": ".enhanced:EnhancedGalaxyNN",
    "shapenet": ".shapenet:ShapeNet",
}
_REGISTERED: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    """Make ``factory(n_outputs=..., **kwargs)`` available as ``get_model(name, ...)``."""
    if name in _BUILTIN or name in _REGISTERED:
        raise ValueError(f"model name {name!r} is already taken")
    _REGISTERED[name] = factory


def model_names() -> list[str]:
    """Every known model name."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def get_model(name: str, n_outputs: int, **kwargs: Any) -> nn.Module:
    """The model called ``name`` with ``n_outputs`` linear outputs.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the known ones) or keyword arguments
        the model does not accept.
    """
    if name in _REGISTERED:
        factory = _REGISTERED[name]
    elif name in _BUILTIN:
        module_name, attr = _BUILTIN[name].split(":")
        factory = getattr(importlib.import_module(module_name, __name__), attr)
    else:
        raise ConfigError(f"unknown model {name!r}; known: {model_names()}")
    # lists (from JSON configs) become tuples: a hashable module is jitted once and reused
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    try:
        return factory(n_outputs=n_outputs, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad model_kwargs {sorted(kwargs)}: {exc}") from None


def count_params(params: Any) -> int:
    """Total number of scalar parameters in a pytree of arrays."""
    return int(
        sum(np.prod(np.shape(leaf), dtype=np.int64) for leaf in jax.tree_util.tree_leaves(params))
    )


# --------------------------------------------------------------------------- saved models


def check_images(images: np.ndarray) -> np.ndarray:
    """``images`` as float32 (N, S, S); ValueError on another shape or on NaN/inf."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must have shape (N, S, S), got {images.shape}")
    if not np.all(np.isfinite(images)):
        raise ValueError("images contain NaN or inf")
    return images


@partial(jax.jit, static_argnums=0)
def _apply_static(model: nn.Module, params: Any, x: jax.Array) -> jax.Array:
    return model.apply({"params": params}, x)


def _apply_fn(model: nn.Module):
    try:
        hash(model)
    except TypeError:  # a model with unhashable attributes: one jit per call
        return jax.jit(lambda p, x: model.apply({"params": p}, x))
    return partial(_apply_static, model)


def predict(
    params: Any,
    model: nn.Module,
    images: np.ndarray,
    batch_size: int,
    *,
    label_mean: np.ndarray | None = None,
    label_std: np.ndarray | None = None,
) -> np.ndarray:
    """Predictions in label units for ``images`` (N, S, S), in jitted fixed-size batches.

    The last batch is zero-padded (no recompilation) and trimmed. Outputs are
    un-standardised as ``out * label_std + label_mean`` when these are given.
    """
    images = check_images(images)
    if len(images) == 0:
        raise ValueError("predict needs at least one image")
    apply = _apply_fn(model)
    pred = map_batches(lambda x: apply(params, x), images, batch_size).astype(np.float64)
    if label_std is not None:
        pred = pred * np.asarray(label_std, np.float64)
    if label_mean is not None:
        pred = pred + np.asarray(label_mean, np.float64)
    return pred


def map_batches(fn: Any, images: np.ndarray, batch_size: int) -> np.ndarray:
    """``fn`` (a jitted function of a batch) over ``images`` in fixed-size batches, concatenated.

    The last batch is zero-padded and its padding trimmed, so ``fn`` compiles once.
    """
    n = len(images)
    if n == 0:
        raise ValueError("map_batches needs at least one image")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = min(batch_size, n)
    pad = (-n) % batch_size
    padded = (
        np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)]) if pad else images
    )
    out = [np.asarray(fn(padded[i : i + batch_size])) for i in range(0, len(padded), batch_size)]
    return np.concatenate(out)[:n]


def init_params(model: nn.Module, key: jax.Array, stamp_size: int) -> Any:
    """Fresh parameters of ``model`` for (S, S) stamps, from one jitted ``model.init``.

    Same values as the eager ``model.init(key, zeros((1, S, S)))["params"]`` up to
    round-off; measured about 15 s faster for ShapeNet on one CPU core, because eager
    initialisation compiles every primitive on its own.
    """
    x = jnp.zeros((1, stamp_size, stamp_size), jnp.float32)
    return jax.jit(model.init)(key, x)["params"]


@dataclass
class Trained:
    """A trained network: model, parameters, label statistics and provenance."""

    model: nn.Module
    params: Any
    label_mean: np.ndarray
    label_std: np.ndarray
    meta: dict

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
        raise FileNotFoundError(f"missing trained model {path} (has training finished?)")
    raw = serialization.msgpack_restore(path.read_bytes())
    meta = json.loads(raw["meta"])
    model = get_model(meta["model"], meta["n_outputs"], **meta.get("model_kwargs", {}))
    return Trained(model, raw["params"], raw["label_mean"], raw["label_std"], meta)


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)

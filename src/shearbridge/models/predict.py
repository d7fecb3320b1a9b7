"""Running a network: jitted predictions in fixed-size batches (one compilation per model)."""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from shearbridge.errors import InputError

__all__ = ["check_images", "predict", "map_batches"]


def check_images(images: np.ndarray) -> np.ndarray:
    """``images`` as float32 (N, S, S); InputError (a ValueError) on another shape or on NaN/inf."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise InputError(f"images must have shape (N, S, S), got {images.shape}")
    if not np.all(np.isfinite(images)):
        raise InputError("images contain NaN or inf")
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


def map_batches(fn: Any, images: np.ndarray, batch_size: int, *more: np.ndarray) -> Any:
    """``fn`` (a jitted function of a batch) over ``images`` in fixed-size batches, concatenated.

    ``more``: further per-row arrays (a PSF image and a noise sigma per stamp, say), batched
    alongside and passed as ``fn(batch, *more_batches)``. ``fn`` may return an array or a pytree of
    arrays (concatenated leaf by leaf). The last batch is zero-padded and its padding trimmed, so
    ``fn`` compiles once.
    """
    n = len(images)
    if n == 0:
        raise ValueError("map_batches needs at least one image")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if any(len(m) != n for m in more):
        raise ValueError(f"every batched array needs {n} rows, got {[len(m) for m in more]}")
    batch_size = min(batch_size, n)
    pad = (-n) % batch_size

    def padded(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)]) if pad else a

    arrays = [padded(np.asarray(a)) for a in (images, *more)]
    out = [
        jax.tree_util.tree_map(np.asarray, fn(*(a[i : i + batch_size] for a in arrays)))
        for i in range(0, n + pad, batch_size)
    ]
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs)[:n], *out)

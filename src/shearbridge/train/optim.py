"""The optimiser and the compiled training and evaluation steps.

* :func:`make_optimizer`: AdamW with a cosine decay over the planned steps
  (optional linear warm-up);
* :func:`train_step`: one step (in-jit batch gather, true MSE loss, AdamW);
* :func:`eval_sum`: the weighted sum of per-sample validation losses of one
  padded batch (:func:`padded_batches`);
* :func:`compiled`: ``jax.jit`` compiled ahead of time with
  :func:`compile_options` (the fast CPU settings of
  :mod:`shearbridge.train.runtime` on a CPU), cached in-process.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from shearbridge.config import ConfigError, TrainConfig
from shearbridge.models.fastconv import gather_batch
from shearbridge.train.runtime import recommended_compiler_options

__all__ = [
    "compile_options",
    "compiled",
    "eval_sum",
    "make_optimizer",
    "padded_batches",
    "train_step",
]


def make_optimizer(
    train: TrainConfig, steps_per_epoch: int, epochs: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW with cosine decay to 0 over ``epochs * steps_per_epoch`` steps (plus warm-up)."""
    total = max(1, epochs * steps_per_epoch)
    warmup = int(round(train.warmup_epochs * steps_per_epoch))
    if warmup >= total:
        raise ConfigError(
            f"warmup_epochs ({train.warmup_epochs}) must be shorter than the run ({epochs} epochs)"
        )
    if warmup > 0:
        schedule = optax.warmup_cosine_decay_schedule(0.0, train.learning_rate, warmup, total, 0.0)
    else:
        schedule = optax.cosine_decay_schedule(train.learning_rate, total)
    return optax.adamw(schedule, weight_decay=train.weight_decay), schedule


_COMPILED: dict[Any, Any] = {}  # in-process cache of compiled steps (tests, noise-grid loops)


def compile_options() -> dict[str, str]:
    """XLA options for the training executables: the fast CPU settings on a CPU backend.

    On CPU, :func:`shearbridge.train.runtime.recommended_compiler_options` (Eigen's
    convolutions instead of YNNPACK's: the same arithmetic, ~1.3x faster
    steps; see :mod:`shearbridge.train.runtime`); on other backends none.
    """
    return recommended_compiler_options() if jax.default_backend() == "cpu" else {}


def compiled(fn, key: tuple, *args: Any, out_shardings: Any = None) -> tuple[Any, float]:
    """``jax.jit(fn)`` compiled ahead of time for ``args``; returns (executable, compile seconds).

    Compiled with :func:`compile_options`. Cached by ``key`` (which must pin
    everything ``fn`` closes over) and the argument shapes and shardings; a hit
    costs no compilation (0 seconds). ``out_shardings`` (data-parallel runs)
    fixes where the outputs live.
    """
    sig = (
        key,
        _sharding_key(out_shardings),
        jax.tree.structure(args),
        tuple((np.shape(a), str(a.dtype), _sharding_key(a)) for a in jax.tree.leaves(args)),
    )
    try:
        hit = _COMPILED.get(sig)
    except TypeError:  # unhashable model attributes: no caching
        sig, hit = None, None
    if hit is not None:
        return hit, 0.0
    t0 = time.perf_counter()
    jitted = jax.jit(fn) if out_shardings is None else jax.jit(fn, out_shardings=out_shardings)
    exe = jitted.lower(*args).compile(compiler_options=compile_options())
    seconds = time.perf_counter() - t0
    if sig is not None:
        if len(_COMPILED) >= 16:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[sig] = exe
    return exe, seconds


def _sharding_key(a: Any) -> str:
    sharding = a if isinstance(a, jax.sharding.Sharding) else getattr(a, "sharding", None)
    return "" if sharding is None else repr(sharding)


def train_step(model, tx, params, opt_state, images, targets, idx):
    """One AdamW step on the MSE of the batch ``images[idx]``; returns (params, opt_state, loss)."""

    def loss_fn(p):
        pred = model.apply({"params": p}, gather_batch(images, idx))
        return jnp.mean((pred - gather_batch(targets, idx)) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def eval_sum(model, params, images, targets, idx, weight):
    """Sum over the batch ``images[idx]`` of per-sample MSE times ``weight`` (0 for padding)."""
    pred = model.apply({"params": params}, gather_batch(images, idx))
    return jnp.sum(jnp.mean((pred - gather_batch(targets, idx)) ** 2, axis=-1) * weight)


def padded_batches(idx: np.ndarray, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``idx`` as (indices, weights) batches; the last padded with index 0, weight 0."""
    pad = (-len(idx)) % batch
    full = np.concatenate([idx, np.zeros(pad, idx.dtype)])
    w = np.concatenate([np.ones(len(idx), np.float32), np.zeros(pad, np.float32)])
    return [(full[i : i + batch], w[i : i + batch]) for i in range(0, len(full), batch)]

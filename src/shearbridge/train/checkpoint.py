"""The resumable training state: ``checkpoint.msgpack`` and the run hash that guards it.

Every epoch ends with an atomic checkpoint (:func:`save_checkpoint`); a killed
run restarted on the same ``workdir`` resumes from it (:func:`restore_checkpoint`)
and reaches the same final parameters. A checkpoint of another run (a different
:func:`run_hash`) is refused.

The bookkeeping dict ``st`` (see :func:`new_state`) holds ``epoch``,
``best_epoch``, ``best_val_loss``, ``wait`` (epochs without improvement),
``done``, ``wall_s``, ``history`` (the per-epoch log) and ``best_params``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from shearbridge.config import config_hash, to_dict
from shearbridge.config.experiments import ExperimentConfig
from shearbridge.errors import ConfigError
from shearbridge.io import atomic_path

__all__ = ["CHECKPOINT", "new_state", "restore_checkpoint", "run_hash", "save_checkpoint"]

CHECKPOINT = "checkpoint.msgpack"


def run_hash(config: ExperimentConfig, n: int, data_hash: str | None) -> str:
    """What fixes a run's trajectory: training settings, noise, split and the data's own hash."""
    train = to_dict(config.train) | {"epochs": config.epochs, "patience": config.patience}
    p = config.profile
    return config_hash(
        train, config.noise_sigma, config.train_dataset, p.name, p.val_fraction, n, data_hash
    )


def new_state(params: Any) -> dict[str, Any]:
    """The bookkeeping of a run that has not trained yet (``params`` are its best so far)."""
    return {
        "epoch": 0,
        "best_epoch": 0,
        "best_val_loss": float("inf"),
        "wait": 0,
        "done": False,
        "wall_s": 0.0,
        "history": [],
        "best_params": params,
    }


def restore_checkpoint(
    path: Path, run_hash: str, params: Any, opt_state: Any, st: dict
) -> tuple[Any, Any]:
    """Load a checkpoint into ``st`` (in place); returns (params, opt_state) as device arrays."""
    raw = serialization.msgpack_restore(path.read_bytes())
    if raw.get("run_hash") != run_hash:
        raise ConfigError(
            f"{path.parent} holds a checkpoint of a different run (hash "
            f"{raw.get('run_hash')} != {run_hash}); delete it or choose another workdir"
        )
    for k in ("epoch", "best_epoch", "best_val_loss", "wait", "done", "wall_s"):
        st[k] = raw[k]
    st["best_params"] = serialization.from_state_dict(params, raw["best_params"])
    st["history"] = json.loads(raw["history"])
    params = serialization.from_state_dict(params, raw["params"])
    opt_state = serialization.from_state_dict(opt_state, raw["opt_state"])
    return jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, opt_state)


def save_checkpoint(path, st, params, opt_state, key, mean, std, run_hash) -> None:
    """Write the full training state to ``path`` atomically."""
    state = {
        "params": params,
        "opt_state": opt_state,
        "best_params": st["best_params"],
        "epoch": st["epoch"],
        "best_epoch": st["best_epoch"],
        "best_val_loss": st["best_val_loss"],
        "wait": st["wait"],
        "done": st["done"],
        "wall_s": st["wall_s"],
        "key": np.asarray(key),
        "label_mean": mean,
        "label_std": std,
        "history": json.dumps(st["history"]),
        "run_hash": run_hash,
    }
    with atomic_path(path) as tmp:
        tmp.write_bytes(serialization.to_bytes(jax.device_get(state)))

"""One training run set up: model, optimiser, parameters (fresh or resumed), compiled steps.

:func:`build_run` makes a :class:`Run` from the config and the prepared
:class:`~shearbridge.train.data.TrainingData` (devices, model, optimiser,
initial parameters, device arrays of the data); :func:`restore_or_init` gives
the bookkeeping dict and loads a checkpoint when ``workdir`` has one;
:func:`prepare_steps` places everything on the devices and compiles the
training and evaluation steps; :func:`validation_loss` is the mean per-sample
loss over the validation split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.config import ConfigError, to_dict
from shearbridge.config.experiments import ExperimentConfig
from shearbridge.estimators.network import psf_sigma_px
from shearbridge.models import TARGET_NAMES, bind_data_kwargs, get_model, init_params
from shearbridge.train.checkpoint import CHECKPOINT, new_state, restore_checkpoint, run_hash
from shearbridge.train.data import TrainingData
from shearbridge.train.distributed import agree_across_processes
from shearbridge.train.optim import compiled, eval_sum, make_optimizer, padded_batches, train_step
from shearbridge.train.parallel import choose_devices, data_parallel

__all__ = ["Run", "build_run", "prepare_steps", "restore_or_init", "validation_loss"]


@dataclass
class Run:
    """What one call of :func:`~shearbridge.train.loop.train_and_evaluate` trains with.

    ``params`` and ``opt_state`` are the current ones (updated by every step);
    ``images`` and ``targets`` (standardised) are the device copies of the
    whole training dataset; ``meta`` goes into every saved model file. The
    fields after ``meta`` are set by :func:`prepare_steps`; ``train_s_session``
    and ``samples_session`` count this call's training only (not a resumed
    checkpoint's).
    """

    config: ExperimentConfig
    workdir: Path
    data: TrainingData
    run_hash: str
    dp: Any  # a DataParallel, or None for the plain single-device step
    model: Any
    tx: Any
    schedule: Any
    key: jax.Array
    shuffle_key: jax.Array
    params: Any
    opt_state: Any
    images: jax.Array
    targets: jax.Array
    meta: dict
    batch_in: Callable[[Any], Any] | None = None  # host batch -> step input
    step_fn: Any = None
    eval_fn: Any = None
    compile_s: float = 0.0
    val_batches: list = field(default_factory=list)
    tr_idx_dev: Any = None
    train_s_session: float = 0.0
    samples_session: int = 0

    @property
    def n_devices(self) -> int:
        return self.dp.n_devices if self.dp else 1


def build_run(
    config: ExperimentConfig, workdir: Path, data: TrainingData, devices: int | None
) -> Run:
    """Devices, model, optimiser and initial parameters (seeded by ``TrainConfig.seed``)."""
    tc = config.train
    rh = run_hash(config, len(data.images), data.data_hash)
    dp = data_parallel(choose_devices(tc.batch_size, devices))
    model_kwargs = bind_data_kwargs(tc.model, tc.model_kwargs, data.sim)  # e.g. the data's PSF
    model = get_model(tc.model, tc.n_outputs, **model_kwargs)
    tx, schedule = make_optimizer(tc, data.steps, config.epochs)
    key = jax.random.PRNGKey(tc.seed)
    init_key, shuffle_key = jax.random.split(key)
    params = init_params(model, init_key, data.images.shape[1])
    if config.epochs == 0 and not hasattr(model, "data_init"):
        raise ConfigError(
            f"{config.name}: epochs=0 (no gradient step) needs a model with a data_init fit; "
            f"model {tc.model!r} has none"
        )
    if hasattr(model, "data_init"):  # e.g. ShapeNet's least-squares residual read-out
        std_targets = (data.targets[data.tr_idx] - data.mean) / data.std
        params = model.data_init(params, data.images[data.tr_idx], std_targets[:, : tc.n_outputs])
    opt_state = tx.init(params)
    images = jnp.asarray(data.images)
    targets = jnp.asarray((data.targets - data.mean) / data.std)
    meta = {
        "model": tc.model,
        "n_outputs": tc.n_outputs,
        "model_kwargs": model_kwargs,
        "stamp_size_px": int(data.images.shape[1]),
        **(
            {"pixel_scale_arcsec": float(data.sim.pixel_scale_arcsec)}
            if data.sim is not None
            else {}
        ),
        **({"psf_moment_sigma_px": psf_sigma_px(data.psf)} if data.psf is not None else {}),
        "targets": list(TARGET_NAMES[: tc.n_outputs]),
        "experiment": to_dict(config),
        "run_hash": rh,
        "train_data_hash": data.data_hash,
    }
    return Run(
        config, workdir, data, rh, dp, model, tx, schedule, key, shuffle_key,
        params, opt_state, images, targets, meta,
    )  # fmt: skip


def restore_or_init(run: Run) -> dict[str, Any]:
    """The bookkeeping dict, and the parameters, from ``workdir``'s checkpoint when it has one."""
    st = new_state(run.params)
    ckpt_path = run.workdir / CHECKPOINT
    if ckpt_path.exists():
        run.params, run.opt_state = restore_checkpoint(
            ckpt_path, run.run_hash, run.params, run.opt_state, st
        )
    agree_across_processes(st["epoch"], run.run_hash)  # one shared workdir, same run everywhere
    return st


def prepare_steps(run: Run, done: bool) -> None:
    """Place the state on the devices, compile the steps (unless ``done``), batch the validation."""
    tc, dp = run.config.train, run.dp
    run.batch_in = dp.shard_batch if dp is not None else (lambda x: x)
    out_sh = None
    if dp is not None:
        run.params, run.opt_state, run.images, run.targets = dp.replicate(
            (run.params, run.opt_state, run.images, run.targets)
        )
        out_sh = dp.replicated

    idx0, w0 = np.zeros(tc.batch_size, np.int32), np.ones(tc.batch_size, np.float32)
    steps, epochs = run.data.steps, run.config.epochs
    opt_key = (tc.learning_rate, tc.weight_decay, tc.warmup_epochs, steps, epochs)
    t_step = 0.0
    if not done and run.config.epochs > 0:  # a finished run restarted only re-writes its outputs
        run.step_fn, t_step = compiled(
            partial(train_step, run.model, run.tx),
            ("step", run.model, opt_key),
            run.params,
            run.opt_state,
            run.images,
            run.targets,
            run.batch_in(idx0),
            out_shardings=out_sh,
        )
    if not done:
        run.eval_fn, t_eval = compiled(
            partial(eval_sum, run.model),
            ("eval", run.model),
            run.params,
            run.images,
            run.targets,
            run.batch_in(idx0),
            run.batch_in(w0),
            out_shardings=out_sh,
        )
        run.compile_s = t_step + t_eval
    run.val_batches = [
        (run.batch_in(i), run.batch_in(w))
        for i, w in padded_batches(run.data.va_idx.astype(np.int32), tc.batch_size)
    ]
    run.tr_idx_dev = jnp.asarray(run.data.tr_idx.astype(np.int32))


def validation_loss(run: Run, params: Any) -> float:
    """Mean per-sample loss (standardised labels) of ``params`` over the validation split."""
    return float(
        sum(run.eval_fn(params, run.images, run.targets, i, w) for i, w in run.val_batches)
    ) / len(run.data.va_idx)

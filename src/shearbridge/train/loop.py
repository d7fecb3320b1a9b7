"""Training: ``train_and_evaluate(config, workdir)``, resumable, with best-model selection.

What a run does (and where it departs from ShearNet, github.com/s-Sayan/ShearNet; the
paper's baseline section):

* the train dataset is split once into training and validation parts by a
  shuffled permutation seeded by ``TrainConfig.seed`` (ShearNet: the last 20%,
  unshuffled); see :mod:`shearbridge.train.data`;
* labels are standardised with the training split's mean and standard deviation
  when ``standardize_labels`` (stored with the parameters; predictions are
  un-standardised), and the loss is the true MSE ``mean((pred - y)**2)`` over
  samples and outputs (ShearNet: ``optax.l2_loss``, half of it, on raw labels);
* AdamW with a cosine decay over the planned steps (optional linear warm-up;
  :mod:`shearbridge.train.optim`);
* each epoch visits the training split in a fresh permutation derived from the
  seed and the epoch number; the last partial batch is dropped, so one compiled
  step serves the whole run;
* early stopping with patience keeps the parameters of the lowest validation
  loss (ShearNet keeps the last ones);
* every epoch ends with an atomic checkpoint; a killed run restarted on the same
  ``workdir`` resumes from it and reaches the same final parameters
  (:mod:`shearbridge.train.checkpoint`);
* with more than one device visible, each step is data-parallel over them
  (:mod:`shearbridge.train.parallel`: batch split, parameters replicated; same numbers
  to float32 round-off); the executables use the fast CPU compiler settings of
  :mod:`shearbridge.train.runtime` on a CPU;
* over several processes (:mod:`shearbridge.train.distributed`) every process runs
  this loop on the global devices and only process 0 writes files.

Files in ``workdir``: ``checkpoint.msgpack`` (full training state),
``losses.json`` (per-epoch log), ``model.msgpack`` (best parameters and label
statistics, see :func:`shearbridge.models.load_trained`), ``params_epochXXX.msgpack``
(snapshots when ``save_every``), ``metrics.json`` (test-set metrics).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from shearbridge.config import to_dict
from shearbridge.config.experiments import ExperimentConfig
from shearbridge.errors import TrainingDivergedError
from shearbridge.io import write_json
from shearbridge.models import MODEL_FILE, save_model
from shearbridge.train.checkpoint import CHECKPOINT, save_checkpoint
from shearbridge.train.data import DatasetLike, load_named_dataset, prepare_data
from shearbridge.train.distributed import is_main_process
from shearbridge.train.metrics import LOSSES, METRICS, json_safe, metrics_on_test_set
from shearbridge.train.state import (
    Run,
    build_run,
    prepare_steps,
    restore_or_init,
    validation_loss,
)

__all__ = [
    "finish",
    "first_history_entry",
    "losses_log",
    "record_epoch",
    "save_epoch",
    "train_and_evaluate",
    "train_epoch",
]


def train_and_evaluate(
    config: ExperimentConfig,
    workdir: str | Path,
    *,
    train_data: DatasetLike | None = None,
    test_data: DatasetLike | None = None,
    stop_after_epoch: int | None = None,
    progress: bool = True,
    devices: int | None = None,
) -> dict:
    """Train ``config`` in ``workdir`` (resuming a checkpoint there), then evaluate on the test set.

    Parameters
    ----------
    config : ExperimentConfig
        The experiment (model, optimiser, profile, noise level, dataset names).
    workdir : path
        Run directory. If it holds a checkpoint of the same experiment, training
        resumes from it; one of a different experiment raises ValueError.
    train_data, test_data : Dataset-like, optional
        Override the datasets named by the config (tests pass small synthetic ones).
    stop_after_epoch : int, optional
        Return after this many epochs in total (checkpoint written, no test
        evaluation): an interruption on purpose, for tests and time-sliced runs.
    progress : bool
        Show a tqdm bar per epoch.
    devices : int, optional
        Devices to train on, data-parallel (see :mod:`shearbridge.train.parallel`).
        Default: all visible devices, or as many as divide the batch size;
        one device is the plain single-device step.

    Returns
    -------
    dict
        The content of ``metrics.json``, or ``{"completed": False, "epoch": ...}``
        when stopped by ``stop_after_epoch``.
    """
    config.validate()
    workdir = Path(workdir)
    train_data = (
        train_data if train_data is not None else load_named_dataset(config.train_dataset, config)
    )
    run = build_run(config, workdir, prepare_data(config, train_data), devices)
    created = _missing_dirs(workdir) if is_main_process() else []  # only process 0 writes files
    if is_main_process():
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        return run_epochs(run, stop_after_epoch, progress, test_data)
    except BaseException:
        _remove_empty(created)  # a failed run leaves no empty folder (nor empty parents) behind
        raise


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, innermost first."""
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out


def _remove_empty(dirs: list[Path]) -> None:
    """Remove the folders ``dirs`` (innermost first) while they are empty; stop at the first that
    is not (it holds a checkpoint, or another run made something there meanwhile)."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            return


def run_epochs(
    run: Run, stop_after_epoch: int | None, progress: bool, test_data: DatasetLike | None
) -> dict:
    """Restore or start, train epoch by epoch (checkpoint after each), then finish."""
    config = run.config
    st = restore_or_init(run)
    prepare_steps(run, st["done"])
    if not st["history"]:
        st["history"].append(first_history_entry(run))
    if config.epochs == 0 and not st["done"]:  # a fitted model: its data_init parameters are final
        st.update(
            done=True,
            best_params=jax.device_get(run.params),
            best_val_loss=st["history"][0]["val_loss"],
        )
        save_epoch(run, st, 0, stopped_early=False)
    while not st["done"] and st["epoch"] < config.epochs:
        if stop_after_epoch is not None and st["epoch"] >= stop_after_epoch:
            break
        epoch = st["epoch"] + 1
        train_loss, vl, t_train, wall = train_epoch(run, epoch, progress)
        check_divergence(run, epoch, train_loss, vl)
        stopped_early = record_epoch(run, st, epoch, train_loss, vl, t_train, wall)
        save_epoch(run, st, epoch, stopped_early)
    if not st["done"]:
        return {"completed": False, "epoch": st["epoch"], "best_epoch": st["best_epoch"]}
    return finish(run, st, test_data)


def first_history_entry(run: Run) -> dict[str, Any]:
    """The epoch-0 entry of the log: validation loss of the initial parameters."""
    return {
        "epoch": 0,
        "train_loss": None,
        "val_loss": validation_loss(run, run.params),
        "lr": float(run.schedule(0)),
        "wall_s": 0.0,
        "sample_steps": 0,
    }


def train_epoch(run: Run, epoch: int, progress: bool) -> tuple[float, float, float, float]:
    """One pass over the training split, then validation; returns the losses and timings.

    Returns (mean train loss, validation loss, training seconds, wall seconds
    including validation). Updates ``run.params`` and ``run.opt_state``.
    """
    steps, batch = run.data.steps, run.config.train.batch_size
    params, opt_state = run.params, run.opt_state
    step_fn, batch_in = run.step_fn, run.batch_in
    t_ep = time.perf_counter()
    perm = np.asarray(
        jax.random.permutation(jax.random.fold_in(run.shuffle_key, epoch), run.tr_idx_dev)
    )
    batches = perm[: steps * batch].reshape(steps, batch)
    losses = []
    desc = f"{run.config.name} epoch {epoch}/{run.config.epochs}"
    bar = tqdm(total=steps, desc=desc, disable=not progress)
    for s, idx in enumerate(batches):
        params, opt_state, loss = step_fn(params, opt_state, run.images, run.targets, batch_in(idx))
        losses.append(loss)
        if progress and s % 10 == 9:
            bar.set_postfix(loss=f"{float(loss):.4g}", refresh=False)
        bar.update(1)
    run.params, run.opt_state = params, opt_state
    train_loss = float(jnp.mean(jnp.stack(losses)))
    t_train = time.perf_counter() - t_ep
    vl = validation_loss(run, params)
    bar.set_postfix(loss=f"{train_loss:.4g}", val=f"{vl:.4g}")
    bar.close()
    wall = time.perf_counter() - t_ep
    return train_loss, vl, t_train, wall


#: A validation loss this many times that of predicting the training mean is a diverged run.
EXPLODE_FACTOR = 100.0


def check_divergence(run: Run, epoch: int, train_loss: float, val_loss: float) -> None:
    """Stop a run whose loss is non-finite or exploded, before anything of it is saved.

    Exploded: the validation loss exceeds :data:`EXPLODE_FACTOR` times the loss of predicting
    the training mean (about 1 with standardised labels); a healthy run never gets there.

    Raises
    ------
    TrainingDivergedError
        Naming the epoch, the losses and the likely cause; the run's earlier checkpoint is kept.
    """
    d = run.data
    trivial = float(np.mean(((d.targets[d.va_idx] - d.mean) / d.std) ** 2))
    if np.isfinite(train_loss) and np.isfinite(val_loss) and val_loss <= EXPLODE_FACTOR * trivial:
        return
    tc = run.config.train
    what = "non-finite" if not (np.isfinite(train_loss) and np.isfinite(val_loss)) else "exploding"
    raise TrainingDivergedError(
        f"{run.config.name}: training diverged at epoch {epoch} ({what} loss: "
        f"train {train_loss:.3g}, validation {val_loss:.3g}; predicting the mean gives "
        f"{trivial:.3g}); likely cause: the learning rate {tc.learning_rate:g} is too large "
        "(or the inputs hold extreme values); no model was published"
    )


def record_epoch(
    run: Run, st: dict, epoch: int, train_loss: float, vl: float, t_train: float, wall: float
) -> bool:
    """Book an epoch in ``st`` (best parameters, patience, history); True if it stopped early."""
    steps, batch = run.data.steps, run.config.train.batch_size
    run.train_s_session += t_train
    run.samples_session += steps * batch
    st["wall_s"] += wall
    st["epoch"] = epoch
    if vl < st["best_val_loss"]:
        st.update(
            best_val_loss=vl, best_epoch=epoch, wait=0, best_params=jax.device_get(run.params)
        )
    else:
        st["wait"] += 1
    stopped_early = st["wait"] >= run.config.patience
    st["done"] = stopped_early or epoch >= run.config.epochs
    st["history"].append(
        {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": vl,
            "lr": float(run.schedule(epoch * steps)),
            "wall_s": wall,
            "train_s": t_train,
            "cumulative_wall_s": st["wall_s"],
            "sample_steps": epoch * steps * batch,
            "samples_per_s": steps * batch / t_train,
            "best": st["best_epoch"] == epoch,
        }
    )
    return stopped_early


def save_epoch(run: Run, st: dict, epoch: int, stopped_early: bool) -> None:
    """End of an epoch on disk: parameter snapshot (``save_every``), checkpoint, ``losses.json``."""
    if not is_main_process():  # other processes of a multi-process run compute only
        return
    d, save_every = run.data, run.config.save_every
    if save_every and epoch % save_every == 0:
        path = run.workdir / f"params_epoch{epoch:03d}.msgpack"
        save_model(path, run.params, d.mean, d.std, run.meta | {"epoch": epoch})
    ckpt = (run.params, run.opt_state, run.key, d.mean, d.std, run.run_hash)
    save_checkpoint(run.workdir / CHECKPOINT, st, *ckpt)
    write_json(run.workdir / LOSSES, json_safe(losses_log(run, st, stopped_early)))


def losses_log(run: Run, st: dict, stopped_early: bool) -> dict[str, Any]:
    """The content of ``losses.json``: the per-epoch history and the run's summary and timing."""
    return {
        "config": to_dict(run.config),
        "run_hash": run.run_hash,
        "epochs": st["history"],
        "best_epoch": st["best_epoch"],
        "best_val_loss": st["best_val_loss"],
        "stopped_early": stopped_early,
        "n_train": len(run.data.tr_idx),
        "n_val": len(run.data.va_idx),
        "steps_per_epoch": run.data.steps,
        "planned_epochs": run.config.epochs,
        "patience": run.config.patience,
        "timing": {
            "compile_s": run.compile_s,
            "total_wall_s": st["wall_s"],
            "samples_per_s_session": run.samples_session / max(run.train_s_session, 1e-9),
            "n_devices": run.n_devices,
        },
    }


def finish(run: Run, st: dict, test_data: DatasetLike | None) -> dict:
    """Save the best model (``model.msgpack``), test it, write and return ``metrics.json``."""
    config, d = run.config, run.data
    best_meta = run.meta | {"epoch": st["best_epoch"], "best_val_loss": st["best_val_loss"]}
    if is_main_process():
        save_model(run.workdir / MODEL_FILE, st["best_params"], d.mean, d.std, best_meta)
    if test_data is None:
        test_data = load_named_dataset(config.test_dataset, config)
    metrics = metrics_on_test_set(config, st, run.model, d.mean, d.std, test_data)
    metrics |= {"run_hash": run.run_hash, "compile_s": run.compile_s, "n_devices": run.n_devices}
    if is_main_process():
        write_json(run.workdir / METRICS, json_safe(metrics))
    return metrics

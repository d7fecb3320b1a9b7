"""Training: ``train_and_evaluate(config, workdir)``, resumable, with best-model selection.

What a run does (and where it departs from ShearNet, see RESEARCH.md section 1):

* the train dataset is split once into training and validation parts by a
  shuffled permutation seeded by ``TrainConfig.seed`` (ShearNet: the last 20%,
  unshuffled);
* labels are standardised with the training split's mean and standard deviation
  when ``standardize_labels`` (stored with the parameters; predictions are
  un-standardised), and the loss is the true MSE ``mean((pred - y)**2)`` over
  samples and outputs (ShearNet: ``optax.l2_loss``, half of it, on raw labels);
* AdamW with a cosine decay over the planned steps (optional linear warm-up);
* each epoch visits the training split in a fresh permutation derived from the
  seed and the epoch number; the last partial batch is dropped, so one compiled
  step serves the whole run;
* early stopping with patience keeps the parameters of the lowest validation
  loss (ShearNet keeps the last ones);
* every epoch ends with an atomic checkpoint; a killed run restarted on the same
  ``workdir`` resumes from it and reaches the same final parameters;
* with more than one device visible, each step is data-parallel over them
  (:mod:`shearbridge.parallel`: batch split, parameters replicated; same numbers
  to float32 round-off); the executables use the fast CPU compiler settings of
  :mod:`shearbridge.fastconv` on a CPU.

Files in ``workdir``: ``checkpoint.msgpack`` (full training state),
``losses.json`` (per-epoch log), ``model.msgpack`` (best parameters and label
statistics, see :func:`load_trained`), ``params_epochXXX.msgpack`` (snapshots when
``save_every``), ``metrics.json`` (test-set metrics).
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization
from tqdm.auto import tqdm

from .config import ConfigError, TrainConfig, config_hash, to_dict
from .configs import ExperimentConfig
from .fastconv import gather_batch, recommended_compiler_options
from .io import atomic_path, write_json
from .models import (
    MODEL_FILE,
    TARGET_NAMES,
    Trained,
    check_images,
    count_params,
    get_model,
    init_params,
    load_trained,
    predict,
    save_model,
)
from .parallel import choose_devices, data_parallel

__all__ = [
    "TARGET_NAMES",
    "CHECKPOINT",
    "MODEL_FILE",
    "LOSSES",
    "METRICS",
    "Trained",
    "train_and_evaluate",
    "predict",
    "load_trained",
    "save_model",
    "make_optimizer",
    "split_indices",
    "label_stats",
    "column_metrics",
]

CHECKPOINT, LOSSES, METRICS = "checkpoint.msgpack", "losses.json", "metrics.json"


class DatasetLike(Protocol):
    """What training needs from :class:`shearbridge.data.Dataset`."""

    def images(self, noise_sigma: float) -> np.ndarray: ...
    def targets(self, n_outputs: int) -> np.ndarray: ...
    def __len__(self) -> int: ...


# --------------------------------------------------------------------------- pieces


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (train, validation) index split; validation gets ``round(val_fraction * n)``."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * n))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"cannot split {n} objects with val_fraction={val_fraction}")
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x5B1])).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def label_stats(targets: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-output mean and standard deviation (float32), or (0, 1) when not standardising."""
    k = targets.shape[1]
    if not standardize:
        return np.zeros(k, np.float32), np.ones(k, np.float32)
    mean = targets.mean(axis=0, dtype=np.float64)
    std = targets.std(axis=0, dtype=np.float64)
    if np.any(std <= 0):
        raise ValueError(f"a target column is constant (std={std}); cannot standardise it")
    return mean.astype(np.float32), std.astype(np.float32)


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


# --------------------------------------------------------------------------- training


_COMPILED: dict[Any, Any] = {}  # in-process cache of compiled steps (tests, noise-grid loops)


def compile_options() -> dict[str, str]:
    """XLA options for the training executables: the fast CPU settings on a CPU backend.

    On CPU, :func:`shearbridge.fastconv.recommended_compiler_options` (Eigen's
    convolutions instead of YNNPACK's: the same arithmetic, ~1.3x faster
    steps; see :mod:`shearbridge.fastconv`); on other backends none.
    """
    return recommended_compiler_options() if jax.default_backend() == "cpu" else {}


def _compiled(fn, key: tuple, *args: Any, out_shardings: Any = None) -> tuple[Any, float]:
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


def _train_step(model, tx, params, opt_state, images, targets, idx):
    def loss_fn(p):
        pred = model.apply({"params": p}, gather_batch(images, idx))
        return jnp.mean((pred - gather_batch(targets, idx)) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def _eval_sum(model, params, images, targets, idx, weight):
    pred = model.apply({"params": params}, gather_batch(images, idx))
    return jnp.sum(jnp.mean((pred - gather_batch(targets, idx)) ** 2, axis=-1) * weight)


def _padded_batches(idx: np.ndarray, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    pad = (-len(idx)) % batch
    full = np.concatenate([idx, np.zeros(pad, idx.dtype)])
    w = np.concatenate([np.ones(len(idx), np.float32), np.zeros(pad, np.float32)])
    return [(full[i : i + batch], w[i : i + batch]) for i in range(0, len(full), batch)]


def _run_hash(config: ExperimentConfig, n: int, data_hash: str | None) -> str:
    """What fixes a run's trajectory: training settings, noise, split and the data's own hash."""
    train = to_dict(config.train) | {"epochs": config.epochs, "patience": config.patience}
    p = config.profile
    return config_hash(
        train, config.noise_sigma, config.train_dataset, p.name, p.val_fraction, n, data_hash
    )


def _load_dataset(name: str, config: ExperimentConfig) -> DatasetLike:
    from . import data  # lazy: GalSim is only needed when data must be read or made

    return data.load_dataset(name, profile=config.profile)


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
        Devices to train on, data-parallel (see :mod:`shearbridge.parallel`).
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
    workdir.mkdir(parents=True, exist_ok=True)
    tc = config.train
    train_data = (
        train_data if train_data is not None else _load_dataset(config.train_dataset, config)
    )

    images_np = check_images(train_data.images(config.noise_sigma))
    targets_np = np.asarray(train_data.targets(tc.n_outputs), np.float32)
    if tc.max_objects is not None:  # a reduced budget: the first objects only
        images_np, targets_np = images_np[: tc.max_objects], targets_np[: tc.max_objects]
    n = len(images_np)
    if targets_np.shape != (n, tc.n_outputs):
        raise ValueError(f"targets have shape {targets_np.shape}, expected {(n, tc.n_outputs)}")
    tr_idx, va_idx = split_indices(n, config.profile.val_fraction, tc.seed)
    if len(tr_idx) < tc.batch_size:
        raise ConfigError(
            f"batch_size ({tc.batch_size}) exceeds the training split ({len(tr_idx)} objects)"
        )
    mean, std = label_stats(targets_np[tr_idx], tc.standardize_labels)
    steps = len(tr_idx) // tc.batch_size
    epochs, patience = config.epochs, config.patience
    data_hash = (getattr(train_data, "manifest", None) or {}).get("config_hash")
    run_hash = _run_hash(config, n, data_hash)

    dp = data_parallel(choose_devices(tc.batch_size, devices))
    model = get_model(tc.model, tc.n_outputs, **dict(tc.model_kwargs))
    tx, schedule = make_optimizer(tc, steps, epochs)
    key = jax.random.PRNGKey(tc.seed)
    init_key, shuffle_key = jax.random.split(key)
    params = init_params(model, init_key, images_np.shape[1])
    if hasattr(model, "data_init"):  # e.g. ShapeNet's least-squares residual read-out
        std_targets = (targets_np[tr_idx] - mean) / std
        params = model.data_init(params, images_np[tr_idx], std_targets[:, : tc.n_outputs])
    opt_state = tx.init(params)
    images = jnp.asarray(images_np)
    targets = jnp.asarray((targets_np - mean) / std)
    meta = {
        "model": tc.model,
        "n_outputs": tc.n_outputs,
        "model_kwargs": dict(tc.model_kwargs),
        "targets": list(TARGET_NAMES[: tc.n_outputs]),
        "experiment": to_dict(config),
        "run_hash": run_hash,
        "train_data_hash": data_hash,
    }

    st: dict[str, Any] = {
        "epoch": 0,
        "best_epoch": 0,
        "best_val_loss": float("inf"),
        "wait": 0,
        "done": False,
        "wall_s": 0.0,
        "history": [],
        "best_params": params,
    }
    ckpt_path = workdir / CHECKPOINT
    if ckpt_path.exists():
        params, opt_state = _restore(ckpt_path, run_hash, params, opt_state, st)
    batch_in = dp.shard_batch if dp is not None else (lambda x: x)  # host batch -> step input
    out_sh = None
    if dp is not None:
        params, opt_state, images, targets = dp.replicate((params, opt_state, images, targets))
        out_sh = dp.replicated

    idx0, w0 = np.zeros(tc.batch_size, np.int32), np.ones(tc.batch_size, np.float32)
    opt_key = (tc.learning_rate, tc.weight_decay, tc.warmup_epochs, steps, epochs)
    step_fn = eval_fn = None
    compile_s = 0.0
    if not st["done"]:  # a finished run restarted only re-writes its outputs
        step_fn, t_step = _compiled(
            partial(_train_step, model, tx),
            ("step", model, opt_key),
            params,
            opt_state,
            images,
            targets,
            batch_in(idx0),
            out_shardings=out_sh,
        )
        eval_fn, t_eval = _compiled(
            partial(_eval_sum, model),
            ("eval", model),
            params,
            images,
            targets,
            batch_in(idx0),
            batch_in(w0),
            out_shardings=out_sh,
        )
        compile_s = t_step + t_eval
    val_batches = [
        (batch_in(i), batch_in(w))
        for i, w in _padded_batches(va_idx.astype(np.int32), tc.batch_size)
    ]

    def val_loss(p: Any) -> float:
        return float(sum(eval_fn(p, images, targets, i, w) for i, w in val_batches)) / len(va_idx)

    if not st["history"]:
        st["history"].append(
            {
                "epoch": 0,
                "train_loss": None,
                "val_loss": val_loss(params),
                "lr": float(schedule(0)),
                "wall_s": 0.0,
                "sample_steps": 0,
            }
        )
    train_s_session, samples_session = 0.0, 0
    tr_idx_dev = jnp.asarray(tr_idx.astype(np.int32))
    while not st["done"] and st["epoch"] < epochs:
        if stop_after_epoch is not None and st["epoch"] >= stop_after_epoch:
            break
        epoch = st["epoch"] + 1
        t_ep = time.perf_counter()
        perm = np.asarray(
            jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), tr_idx_dev)
        )
        batches = perm[: steps * tc.batch_size].reshape(steps, tc.batch_size)
        losses = []
        bar = tqdm(total=steps, desc=f"{config.name} epoch {epoch}/{epochs}", disable=not progress)
        for s, idx in enumerate(batches):
            params, opt_state, loss = step_fn(params, opt_state, images, targets, batch_in(idx))
            losses.append(loss)
            if progress and s % 10 == 9:
                bar.set_postfix(loss=f"{float(loss):.4g}", refresh=False)
            bar.update(1)
        train_loss = float(jnp.mean(jnp.stack(losses)))
        t_train = time.perf_counter() - t_ep
        vl = val_loss(params)
        bar.set_postfix(loss=f"{train_loss:.4g}", val=f"{vl:.4g}")
        bar.close()
        wall = time.perf_counter() - t_ep
        train_s_session += t_train
        samples_session += steps * tc.batch_size
        st["wall_s"] += wall
        st["epoch"] = epoch
        if vl < st["best_val_loss"]:
            st.update(
                best_val_loss=vl, best_epoch=epoch, wait=0, best_params=jax.device_get(params)
            )
        else:
            st["wait"] += 1
        stopped_early = st["wait"] >= patience
        st["done"] = stopped_early or epoch >= epochs
        st["history"].append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": vl,
                "lr": float(schedule(epoch * steps)),
                "wall_s": wall,
                "train_s": t_train,
                "cumulative_wall_s": st["wall_s"],
                "sample_steps": epoch * steps * tc.batch_size,
                "samples_per_s": steps * tc.batch_size / t_train,
                "best": st["best_epoch"] == epoch,
            }
        )
        if config.save_every and epoch % config.save_every == 0:
            save_model(
                workdir / f"params_epoch{epoch:03d}.msgpack",
                params,
                mean,
                std,
                meta | {"epoch": epoch},
            )
        _save_checkpoint(ckpt_path, st, params, opt_state, key, mean, std, run_hash)
        log = {
            "config": to_dict(config),
            "run_hash": run_hash,
            "epochs": st["history"],
            "best_epoch": st["best_epoch"],
            "best_val_loss": st["best_val_loss"],
            "stopped_early": stopped_early,
            "n_train": len(tr_idx),
            "n_val": len(va_idx),
            "steps_per_epoch": steps,
            "planned_epochs": epochs,
            "patience": patience,
            "timing": {
                "compile_s": compile_s,
                "total_wall_s": st["wall_s"],
                "samples_per_s_session": samples_session / max(train_s_session, 1e-9),
                "n_devices": dp.n_devices if dp else 1,
            },
        }
        write_json(workdir / LOSSES, _json_safe(log))
    if not st["done"]:
        return {"completed": False, "epoch": st["epoch"], "best_epoch": st["best_epoch"]}

    best_meta = meta | {"epoch": st["best_epoch"], "best_val_loss": st["best_val_loss"]}
    save_model(workdir / MODEL_FILE, st["best_params"], mean, std, best_meta)
    test_data = test_data if test_data is not None else _load_dataset(config.test_dataset, config)
    metrics = _test_metrics(config, st, model, mean, std, test_data)
    metrics |= {"run_hash": run_hash, "compile_s": compile_s, "n_devices": dp.n_devices if dp else 1}
    write_json(workdir / METRICS, _json_safe(metrics))
    return metrics


def _restore(path: Path, run_hash: str, params: Any, opt_state: Any, st: dict) -> tuple[Any, Any]:
    """Load a checkpoint into ``st`` (in place); returns (params, opt_state) as device arrays."""
    raw = serialization.msgpack_restore(path.read_bytes())
    if raw.get("run_hash") != run_hash:
        raise ValueError(
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


def _test_metrics(
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


def _json_safe(obj: Any) -> Any:
    """Non-finite floats (a diverged loss) become None: JSON has no NaN."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _save_checkpoint(path, st, params, opt_state, key, mean, std, run_hash) -> None:
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

"""The training data of a run: stamps, labels, train/validation split and label statistics.

* the train dataset is split once into training and validation parts by a
  shuffled permutation seeded by ``TrainConfig.seed`` (ShearNet: the last 20%,
  unshuffled), see :func:`split_indices`;
* labels are standardised with the training split's mean and standard deviation
  when ``standardize_labels`` (:func:`label_stats`);
* ``TrainConfig.max_objects`` keeps the first objects only (a reduced budget).

:func:`prepare_data` does all of it and returns a :class:`TrainingData`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from shearbridge.config import ConfigError, seeds
from shearbridge.config.experiments import ExperimentConfig
from shearbridge.errors import InputError
from shearbridge.models import check_images

__all__ = [
    "DatasetLike",
    "TrainingData",
    "label_stats",
    "load_named_dataset",
    "prepare_data",
    "split_indices",
]


class DatasetLike(Protocol):
    """What training needs from :class:`shearbridge.sim.datasets.Dataset`."""

    def images(self, noise_sigma: float) -> np.ndarray: ...
    def targets(self, n_outputs: int) -> np.ndarray: ...
    def __len__(self) -> int: ...


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (train, validation) index split; validation gets ``round(val_fraction * n)``."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * n))
    if n_val < 1 or n_val >= n:
        raise InputError(f"cannot split {n} objects with val_fraction={val_fraction}")
    perm = seeds.rng(seed, "train_val_split").permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def label_stats(targets: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-output mean and standard deviation (float32), or (0, 1) when not standardising."""
    k = targets.shape[1]
    if not standardize:
        return np.zeros(k, np.float32), np.ones(k, np.float32)
    mean = targets.mean(axis=0, dtype=np.float64)
    std = targets.std(axis=0, dtype=np.float64)
    if np.any(std <= 0):
        raise InputError(f"a target column is constant (std={std}); cannot standardise it")
    return mean.astype(np.float32), std.astype(np.float32)


def load_named_dataset(name: str, config: ExperimentConfig) -> DatasetLike:
    """The dataset ``name`` of ``config``'s profile (read from the cache, or made)."""
    # lazy: GalSim is only needed when data must be read or made
    from shearbridge.sim import datasets as data

    return data.load_dataset(name, profile=config.profile)


@dataclass(frozen=True)
class TrainingData:
    """Host arrays of a run's training data and what is derived from them.

    ``images`` (N, H, W) and raw ``targets`` (N, n_outputs) float32; ``tr_idx``
    and ``va_idx`` the sorted split; ``mean`` and ``std`` the label statistics;
    ``steps`` the optimiser steps per epoch (last partial batch dropped);
    ``data_hash`` the dataset manifest's ``config_hash`` (None when absent).
    """

    images: np.ndarray
    targets: np.ndarray
    tr_idx: np.ndarray
    va_idx: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    steps: int
    data_hash: str | None
    sim: Any = None  # the dataset's simulation record (SimConfig): what the model is told (PSF)
    psf: Any = (
        None  # the dataset's PSF image (S, S): recorded with the model, checked on a user's stamps
    )


def prepare_data(config: ExperimentConfig, train_data: DatasetLike) -> TrainingData:
    """Read ``train_data`` at the config's noise level, check it, split it, get label statistics."""
    tc = config.train
    images_np = check_images(train_data.images(config.noise_sigma))
    targets_np = np.asarray(train_data.targets(tc.n_outputs), np.float32)
    if tc.max_objects is not None:  # a reduced budget: the first objects only
        images_np, targets_np = images_np[: tc.max_objects], targets_np[: tc.max_objects]
    n = len(images_np)
    if targets_np.shape != (n, tc.n_outputs):
        raise InputError(f"targets have shape {targets_np.shape}, expected {(n, tc.n_outputs)}")
    tr_idx, va_idx = split_indices(n, config.profile.val_fraction, tc.seed)
    if len(tr_idx) < tc.batch_size:
        raise ConfigError(
            f"batch_size ({tc.batch_size}) exceeds the training split ({len(tr_idx)} objects)"
        )
    mean, std = label_stats(targets_np[tr_idx], tc.standardize_labels)
    steps = len(tr_idx) // tc.batch_size
    data_hash = (getattr(train_data, "manifest", None) or {}).get("config_hash")
    psf = getattr(train_data, "psf", None)
    return TrainingData(
        images_np,
        targets_np,
        tr_idx,
        va_idx,
        mean,
        std,
        steps,
        data_hash,
        getattr(train_data, "sim", None),
        None if psf is None else np.asarray(psf),
    )

"""A dataset in memory: :class:`Dataset` and the stamp check :func:`validate_stamps`.

A :class:`Dataset` holds the noiseless stamps, the unit noise fields, the labels and the PSF of
one cached dataset (:mod:`shearbridge.sim.datasets` writes and reads the files behind it); the
noisy image at any level, the regression targets and row subsets are views of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shearbridge.config import SimConfig
from shearbridge.errors import ConfigError, InputError

__all__ = ["TARGET_NAMES", "Dataset", "validate_stamps"]


#: Columns of :meth:`Dataset.targets`, in order.
TARGET_NAMES = ("g1", "g2", "size_arcsec", "flux")


@dataclass
class Dataset:
    """A loaded dataset (arrays may be read-only memory maps)."""

    name: str
    clean: np.ndarray
    noise: np.ndarray
    labels: dict[str, np.ndarray]
    psf: np.ndarray
    sim: SimConfig
    manifest: dict[str, Any]

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def images(self, noise_sigma: float) -> np.ndarray:
        """Noisy stamps ``clean + noise_sigma * noise`` (float32, ``(N, S, S)``).

        ``noise_sigma`` is the per-pixel noise standard deviation (image units); 0 gives
        the clean stamps.
        """
        sigma = float(noise_sigma)
        if not np.isfinite(sigma) or sigma < 0:
            raise ConfigError(f"noise_sigma must be finite and >= 0, got {noise_sigma!r}")
        out = np.multiply(self.noise, np.float32(sigma), dtype=np.float32)
        out += self.clean
        return out

    def targets(self, n_outputs: int) -> np.ndarray:
        """Regression targets, float64 ``(N, n_outputs)``: columns ``TARGET_NAMES[:n_outputs]``."""
        if n_outputs not in (1, 2, 3, 4):
            names = ", ".join(TARGET_NAMES)
            raise ValueError(f"n_outputs must be 1..4 ({names}), got {n_outputs!r}")
        columns = [np.asarray(self.labels[k], np.float64) for k in TARGET_NAMES[:n_outputs]]
        return np.stack(columns, axis=1)

    def subset(self, idx: np.ndarray | slice | list[int]) -> "Dataset":
        """The rows ``idx`` (a slice keeps memory maps; an index array copies)."""
        if not isinstance(idx, slice):
            idx = np.asarray(idx)
            if idx.dtype == bool:
                if idx.shape != (len(self),):
                    raise ValueError(
                        f"boolean mask must have shape ({len(self)},), got {idx.shape}"
                    )
            elif not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(
                    f"idx must be a slice, integer indices or a boolean mask, got dtype {idx.dtype}"
                )
        return Dataset(
            name=self.name,
            clean=self.clean[idx],
            noise=self.noise[idx],
            labels={k: v[idx] for k, v in self.labels.items()},
            psf=self.psf,
            sim=self.sim,
            manifest=self.manifest,
        )


def validate_stamps(x: Any, stamp_size: int) -> np.ndarray:
    """Check a stamp or a stack of stamps; return it as an ndarray.

    Accepts shape ``(S, S)`` or ``(N, S, S)`` with ``S = stamp_size`` and N >= 1.

    Raises
    ------
    ValueError
        Naming the problem: wrong dimensionality or size, non-numeric dtype, NaN or inf.
    """
    arr = np.asarray(x)
    if arr.ndim not in (2, 3) or arr.shape[-2:] != (stamp_size, stamp_size):
        raise InputError(
            f"stamps must have shape ({stamp_size}, {stamp_size}) or "
            f"(N, {stamp_size}, {stamp_size}), got {arr.shape}"
        )
    if arr.ndim == 3 and arr.shape[0] == 0:
        raise InputError("stamps: empty stack (N = 0)")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"stamps must be real numbers, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0].tolist()
        raise InputError(
            f"stamps contain {int(bad.sum())} non-finite values (NaN/inf), first at {where}"
        )
    return arr

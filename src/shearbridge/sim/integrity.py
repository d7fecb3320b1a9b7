"""What a cached dataset must satisfy: its files, their content hashes, shapes, finite values,
and stamps that hold the flux their labels say (pure checks on arrays; the messages name the
file and the command that remakes it)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from shearbridge.errors import InputError
from shearbridge.sim import stamps as simmod
from shearbridge.sim.catalogue import DatasetSpec

__all__ = [
    "FILES",
    "FLUX_RATIO_LIMIT",
    "content_hashes",
    "check_content",
    "check_arrays",
    "check_fluxes",
]

#: The files of a dataset folder.
FILES = ("clean.npy", "noise.npy", "labels.npz", "psf.npy", "manifest.json")


def content_hashes(path: Path) -> dict[str, str]:
    """SHA-256 of each data file of a dataset folder (the manifest itself excluded)."""
    out = {}
    for fname in FILES:
        if fname == "manifest.json":
            continue
        digest = hashlib.sha256()
        with open(path / fname, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                digest.update(block)
        out[fname] = digest.hexdigest()
    return out


#: Dataset folders whose hashes matched, with the (size, mtime, ctime, inode) of each data file
#: then: a second load in the same process re-hashes only when a file changed since.
_VERIFIED: dict[Path, tuple[tuple[int, ...], ...]] = {}


def _stat_key(path: Path) -> tuple[tuple[int, ...], ...]:
    stats = [os.stat(path / f) for f in FILES if f != "manifest.json"]
    return tuple((s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino) for s in stats)


def check_content(path: Path, manifest: Mapping[str, object], fix: str) -> None:
    """The data files still hold the bytes that were written: their SHA-256 equals the manifest's
    ``content_sha256`` (a same-size edit of an array passes every other check). Manifests made
    before content hashes were recorded are not checked."""
    stored = manifest.get("content_sha256")
    if not isinstance(stored, Mapping):
        return
    key = Path(path).resolve()
    stamp = _stat_key(key)
    if _VERIFIED.get(key) == stamp:
        return
    actual = content_hashes(key)
    for fname, digest in actual.items():
        if stored.get(fname) != digest:
            _VERIFIED.pop(key, None)
            raise InputError(
                f"dataset {path}: {path / fname} was altered after it was made (its "
                f"SHA-256 differs from the one in manifest.json); {fix}"
            )
    _VERIFIED[key] = stamp


#: Largest factor by which the summed pixels of the first stamps may differ from their flux labels.
FLUX_RATIO_LIMIT = 2.0


def check_fluxes(path: Path, clean: np.ndarray, labels: Mapping[str, np.ndarray], fix: str) -> None:
    """The noiseless stamps hold the flux their labels say (a rescaled file would not)."""
    n = min(len(clean), 256)
    if n == 0 or "flux" not in labels:
        return
    ratio = float(
        np.median(np.asarray(clean[:n], np.float64).sum(axis=(1, 2)) / labels["flux"][:n])
    )
    if not 1.0 / FLUX_RATIO_LIMIT < ratio < FLUX_RATIO_LIMIT:
        raise InputError(
            f"dataset {path}: the stamps of clean.npy hold {ratio:.3g} times the flux of their "
            f"labels (expected about 1): the file was altered; {fix}"
        )


def check_arrays(
    path: Path,
    spec: DatasetSpec,
    clean: np.ndarray,
    noise: np.ndarray,
    psf: np.ndarray,
    labels: Mapping[str, np.ndarray],
) -> None:
    s, n = spec.sim.stamp_size_px, spec.n_stamps
    for fname, arr, shape in (
        ("clean.npy", clean, (n, s, s)),
        ("noise.npy", noise, (n, s, s)),
        ("psf.npy", psf, (s, s)),
    ):
        if arr.shape != shape:
            raise InputError(f"{path / fname}: shape {arr.shape}, expected {shape}")
        for a in range(0, max(len(arr), 1), 4096):
            if not np.isfinite(arr[a : a + 4096]).all():
                raise InputError(f"{path / fname}: non-finite values")
    required = simmod.BASE_LABELS + (simmod.SHEAR_LABELS if spec.sim.shear_test else ())
    for key in required:
        if key not in labels:
            raise InputError(f"{path / 'labels.npz'}: missing label {key!r}")
        if labels[key].shape != (n,) or not np.isfinite(labels[key]).all():
            raise InputError(
                f"{path / 'labels.npz'}: label {key!r} must be finite with shape ({n},)"
            )

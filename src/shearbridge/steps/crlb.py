"""Pipeline step: the per-galaxy Cramér–Rao bound of the comparison set, cached.

The comparison set is the first ``profile.n_crlb`` objects of the test set. The bound
on (g1, g2) (:mod:`shearbridge.stats.crlb`) is computed once at unit noise and scaled
(it is linear in the noise sigma), and kept in ``src/data/<profile>/crlb/test.npz``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from shearbridge import paths
from shearbridge.config import Profile
from shearbridge.errors import MissingFileError
from shearbridge.io import save_npz
from shearbridge.steps.measure import progress_bar

__all__ = ["crlb_path", "compute_crlb", "load_crlb", "load_crlb_unit"]


def crlb_path(profile: Profile) -> Path:
    return paths.profile_dir(profile) / "crlb" / "test.npz"


def compute_crlb(profile: Profile) -> Path:
    """Per-galaxy CRLB of the comparison set at unit noise, cached beside the profile's data."""
    from shearbridge.sim.datasets import load_dataset
    from shearbridge.stats.crlb import crlb_for_dataset

    ds = load_dataset("test", profile)
    n = profile.n_crlb
    labels = {k: np.asarray(v[:n]) for k, v in ds.labels.items()}
    t0 = time.perf_counter()
    with progress_bar(n, f"Cramer-Rao bound of {profile.name}/test", unit="galaxy") as bar:
        out = crlb_for_dataset(labels, ds.sim, 1.0, progress=bar.update)
    wall = time.perf_counter() - t0
    path = crlb_path(profile)
    save_npz(path, sigma_g1=out["sigma_g1"], sigma_g2=out["sigma_g2"], n=np.asarray(n), wall_s=np.asarray(wall))
    return path


def load_crlb_unit(profile: Profile) -> tuple[np.ndarray, float]:
    """(n_crlb, 2) per-galaxy sigma_CRLB(g1, g2) at unit noise, and the wall seconds it took."""
    path = crlb_path(profile)
    if not path.exists():
        raise MissingFileError(f"missing {path}: run `python -m shearbridge crlb --profile {profile.name}`")
    with np.load(path) as z:
        return np.stack([z["sigma_g1"], z["sigma_g2"]], axis=1), float(z["wall_s"])


def load_crlb(profile: Profile, noise_sigma: float) -> np.ndarray:
    """(n_crlb, 2) per-galaxy sigma_CRLB(g1, g2) at ``noise_sigma``."""
    return noise_sigma * load_crlb_unit(profile)[0]

"""Pipeline step: the per-galaxy Cramér–Rao bound of the comparison set, cached.

The comparison set is the first ``profile.n_crlb`` objects of the test set. The bound
on (g1, g2) (:mod:`shearbridge.stats.crlb`) is computed once at unit noise and scaled
(it is linear in the noise sigma), and kept in ``src/data/<profile>/crlb/test.npz``.
"""

from __future__ import annotations

import time
from argparse import ArgumentParser, Namespace
from pathlib import Path

import numpy as np

from shearbridge.layout import Layout
from shearbridge.config import Profile
from shearbridge.io import save_npz
from shearbridge.steps.command import Command, add_profile, profile_of
from shearbridge.steps.measure import progress_bar

__all__ = ["compute_crlb", "COMMANDS"]


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
    path = Layout(profile).bound()
    save_npz(
        path,
        sigma_g1=out["sigma_g1"],
        sigma_g2=out["sigma_g2"],
        n=np.asarray(n),
        wall_s=np.asarray(wall),
    )
    return path


def _arguments(p: ArgumentParser) -> None:
    add_profile(p)
    p.add_argument(
        "--dataset",
        help="a robustness set: finite-difference GalSim bound of its "
        "first galaxies (shearbridge.steps.robustness) instead of the autodiff bound of "
        "the test set",
    )


def _crlb(args: Namespace) -> None:
    if args.dataset:
        from shearbridge.steps.robustness import compute_fd_crlb

        print(compute_fd_crlb(args.dataset, profile_of(args)))
        return
    print(compute_crlb(profile_of(args)))


COMMANDS = (
    Command(
        "crlb",
        "per-galaxy Cramer-Rao bounds of the comparison set (test objects)",
        _arguments,
        _crlb,
    ),
)

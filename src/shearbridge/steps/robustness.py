"""Precision versus robustness: RMSE(g) against the Cramer-Rao bound outside the training set.

Research question 2. The networks were trained on ShearNet's 2025 galaxies
(Gaussian galaxy, Gaussian PSF of sigma 0.25"); here every method is run on the
robustness test sets of :mod:`shearbridge.sim.catalogue` (:data:`ROBUST_DATASETS`):
exponential, Sersic and bulge+disk galaxies, a Moffat PSF (FWHM 0.7") and a wider
Gaussian PSF (sigma 0.30"), plus the in-distribution ``test`` set as the reference
row. The methods are the registry's ``robustness`` study (:mod:`shearbridge.study`).
Networks use the run trained at the same noise level and see only the stamps (no PSF
input: a PSF change is a distribution shift for them); the classical references are
given each dataset's own PSF image.

The bound of each dataset is computed for *its* galaxy model and PSF by central
finite differences of the dataset's own GalSim renderer (:mod:`shearbridge.stats.crlb_fd`)
over ``theta = (flux, dx, dy, size, g1, g2)``, all six free,
on the first ``min(128, profile.n_crlb, N)`` galaxies (:func:`n_galaxies`), at unit
noise, cached in ``src/data/<profile>/crlb/<dataset>_fd.npz`` (the ``_fd`` suffix
keeps it apart from the autodiff bound ``crlb/test.npz`` of :mod:`shearbridge.steps.crlb`;
the robustness ``test`` row uses the finite-difference bound too, so every row has the
same construction).

The datasets, the result files' names and the summary (each method's degradation against its
``test`` row) are :mod:`shearbridge.summaries.robustness`.
"""

from __future__ import annotations

import math
import time
from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge.layout import Layout
from shearbridge.config import Profile, seeds
from shearbridge.estimators.base import usable
from shearbridge.io import save_npz, write_json
from shearbridge.stats.crlb_fd import FD_LABEL_KEYS, crlb_fd
from shearbridge.stats.resample import ratio_with_error, robust_ratio_with_error
from shearbridge.steps.command import (
    Command,
    add_method,
    add_noise,
    add_profile,
    print_json,
    profile_of,
)
from shearbridge.steps.measure import progress_bar, timed_measure
from shearbridge.summaries.robustness import (
    ROBUST_DATASETS,
    check_dataset,
    check_method,
    result_path,
)

__all__ = [
    "ROBUST_DATASETS",
    "RobustnessError",
    "check_method",
    "check_dataset",
    "n_galaxies",
    "compute_fd_crlb",
    "load_fd_crlb",
    "result_path",
    "run_robustness",
    "COMMANDS",
]

#: Most galaxies per dataset that get a finite-difference bound (and are measured).
N_CRLB_MAX = 512


from shearbridge.errors import (  # noqa: E402  (re-exported)
    ConfigError,
    MissingFileError,
    RobustnessError,
)


def n_galaxies(profile: Profile, n_objects: int) -> int:
    """Galaxies of a robustness set that are measured.

    ``min(N_CRLB_MAX, profile.n_crlb, n_objects)``."""
    return int(min(N_CRLB_MAX, profile.n_crlb, n_objects))


def compute_fd_crlb(dataset: str, profile: Profile, rel_step: float = 1e-3) -> Path:
    """Finite-difference CRLB of the first :func:`n_galaxies` objects of ``dataset``, cached."""
    from shearbridge.sim.datasets import load_dataset

    ds = load_dataset(check_dataset(dataset), profile)
    n = n_galaxies(profile, len(ds))
    t0 = time.perf_counter()
    with progress_bar(
        n, f"finite-difference bound of {profile.name}/{dataset}", unit="galaxy"
    ) as bar:
        sig = crlb_fd(ds.sim, ds.labels, range(n), rel_step, progress=bar.update)
    wall = time.perf_counter() - t0
    path = Layout(profile).bound_fd(check_dataset(dataset))
    save_npz(
        path,
        **{f"sigma_{k}": sig[:, i] for i, k in enumerate(FD_LABEL_KEYS)},
        n=np.asarray(n),
        wall_s=np.asarray(wall),
        rel_step=np.asarray(rel_step),
    )
    return path


def load_fd_crlb(dataset: str, profile: Profile, noise_sigma: float) -> np.ndarray:
    """(n, 2) per-galaxy sigma_CRLB(g1, g2) of ``dataset`` at ``noise_sigma``."""
    path = Layout(profile).bound_fd(check_dataset(dataset))
    if not path.exists():
        raise MissingFileError(
            f"missing {path}: run `python -m shearbridge crlb --dataset {dataset} "
            f"--profile {profile.name}`"
        )
    with np.load(path) as z:
        return noise_sigma * np.stack([z["sigma_g1"], z["sigma_g2"]], axis=1)


# ------------------------------------------------------------------ one method, one dataset


def run_robustness(method: str, dataset: str, profile: Profile, sigma: float) -> dict[str, Any]:
    """RMSE(g), RMSE/CRLB (bootstrap errors) and the linear bias of one method on one set.

    The first :func:`n_galaxies` objects of ``dataset`` at pixel noise ``sigma`` (image
    units). Written to :func:`result_path` (JSON) with the estimates beside it (``.npz``).
    """
    from shearbridge.sim.catalogue import STREAM_ID
    from shearbridge.sim.datasets import load_dataset
    from shearbridge.stats.bias import linear_bias

    check_method(method)
    check_dataset(dataset)
    if not (np.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"noise sigma must be a positive number, got {sigma!r}")
    ds = load_dataset(dataset, profile)
    crlb = load_fd_crlb(dataset, profile, sigma)
    n = len(crlb)
    images = ds.images(sigma)[:n]
    true = ds.targets(2)[:n]
    g, flags, wall = timed_measure(
        method, profile, sigma, images, np.asarray(ds.psf), ds.sim.pixel_scale_arcsec
    )
    ok = usable(g, flags)
    if ok.sum() < 2:
        raise ValueError(f"{method} on {dataset}: only {int(ok.sum())} unflagged estimates")
    seq = seeds.seed_sequence(
        profile.seed, "robustness_bootstrap", STREAM_ID[dataset], round(-math.log10(sigma) * 100)
    )
    rng = np.random.default_rng(seq)
    result = {
        "method": method,
        "dataset": dataset,
        "noise_sigma": float(sigma),
        "profile": profile.name,
        "n": int(n),
        "n_flagged": int((~ok).sum()),
        "flagged_fraction": float((~ok).mean()),
        "wall_s": wall,
        "per_component_rmse": [
            float(np.sqrt(np.mean((g[ok, k] - true[ok, k]) ** 2))) for k in (0, 1)
        ],
        **ratio_with_error(g[ok] - true[ok], crlb[ok], rng, profile.bootstrap),
        **robust_ratio_with_error(g[ok] - true[ok], crlb[ok], rng, profile.bootstrap),
        "n_used": int(ok.sum()),
        "linear_bias": linear_bias(true, g, flags=np.where(ok, 0, 1), n_blocks=20),
    }
    path = result_path(profile, method, dataset, sigma)
    write_json(path, result)
    save_npz(path.with_suffix(".npz"), g=g, flags=np.asarray(flags), true=true)
    return result


# ------------------------------------------------------------------ command


def _arguments(p: ArgumentParser) -> None:
    add_method(p, "robustness")
    p.add_argument(
        "--dataset",
        required=True,
        nargs="+",
        help=f"one or more of {', '.join(ROBUST_DATASETS)} (one process: compiled once)",
    )
    add_noise(p)
    add_profile(p)


def _robustness(args: Namespace) -> None:
    profile = profile_of(args)
    for dataset in args.dataset:
        print_json(run_robustness(args.method, dataset, profile, args.noise))


COMMANDS = (
    Command(
        "robustness",
        "RMSE/CRLB of one method on robustness sets at one noise level",
        _arguments,
        _robustness,
    ),
)

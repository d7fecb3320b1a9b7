"""Pipeline step: every method on the same stamps, RMSE against the per-galaxy Cramér–Rao bound.

The comparison set is the first ``profile.n_crlb`` objects of the test set (the same
galaxies and the same noise fields for every method, at every noise level of the grid);
its bound is :mod:`shearbridge.steps.crlb`'s. The methods are the registry's
``compare`` study (:mod:`shearbridge.study`): trained networks (the run trained at the
same noise level), the JAX maximum-likelihood fit, GalSim HSM, ngmix where installed.
Each result file records the method's throughput (galaxies per second on this machine,
after compilation / warm-up).
"""

from __future__ import annotations

from argparse import Namespace
from typing import Any

import numpy as np

from shearbridge import provenance
from shearbridge.config import Profile, seeds
from shearbridge.estimators.base import usable
from shearbridge.io import save_npz, write_json
from shearbridge.stats.resample import ratio_with_error
from shearbridge.results import load_crlb
from shearbridge.layout import Layout
from shearbridge.steps.command import Command, method_at_noise, print_json, profile_of
from shearbridge.steps.measure import timed_measure

__all__ = ["run_method", "COMMANDS"]


def run_method(method: str, profile: Profile, sigma: float) -> dict[str, Any]:
    """RMSE, RMSE/CRLB and throughput of one method at one noise level, written as JSON."""
    from shearbridge.sim.datasets import load_dataset

    ds = load_dataset("test", profile)
    n = profile.n_crlb
    images = ds.images(sigma)[:n]
    true = ds.targets(2)[:n]
    g, flags, wall = timed_measure(
        method, profile, sigma, images, np.asarray(ds.psf), ds.sim.pixel_scale_arcsec
    )
    ok = usable(g, flags)
    crlb = load_crlb(profile, sigma)
    rng = seeds.rng(profile.seed, "compare_bootstrap", int(-np.log10(sigma) * 100))
    result = {
        "method": method,
        "noise_sigma": sigma,
        "profile": profile.name,
        "n": int(n),
        "n_flagged": int((~ok).sum()),
        "flagged_fraction": float((~ok).mean()),
        "wall_s": wall,
        "galaxies_per_s": n / wall,
        "per_component_rmse": [
            float(np.sqrt(np.mean((g[ok, k] - true[ok, k]) ** 2))) for k in (0, 1)
        ],
        "hardware": provenance.hardware(),
        **ratio_with_error(g[ok] - true[ok], crlb[ok], rng, profile.bootstrap),
    }
    path = Layout(profile).result("compare", method, sigma)
    write_json(path, result)
    save_npz(path.with_suffix(".npz"), g=g, flags=flags, true=true)
    return result


def _compare(args: Namespace) -> None:
    print_json(run_method(args.method, profile_of(args), args.noise))


COMMANDS = (
    Command(
        "compare",
        "RMSE, RMSE/CRLB and throughput of one method at one noise level",
        method_at_noise("compare", "ablation"),
        _compare,
    ),
)

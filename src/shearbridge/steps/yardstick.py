"""Pipeline step: the two noise realisations of the shear-noise yardstick (n_eff).

For each method and noise level, the first ``n_crlb`` comparison galaxies (those with a
per-galaxy Cramér–Rao bound) are measured in two independent noise realisations: the test set's
own noise field (realisation A) and a second one drawn for this step only (realisation B, stream
``SeedSequence(profile.seed, spawn_key=(STREAM_ID["test"], 2, i))`` for galaxy ``i``, used by
nothing else). The estimates and flags of both are saved, with the analytic responses and
predicted per-galaxy errors of the methods that give them; the calibrated scatter between the two
against the bound, the n_eff lost and the van Trees bound are the summary's
(:mod:`shearbridge.summaries.yardstick`).
"""

from __future__ import annotations

import dataclasses
from argparse import Namespace
from typing import Any

import numpy as np

from shearbridge.layout import Layout
from shearbridge.config import Profile
from shearbridge.io import save_npz
from shearbridge.runs import method_estimator
from shearbridge.steps.command import Command, method_at_noise, print_json, profile_of

__all__ = ["run_yardstick", "second_noise", "COMMANDS"]


def second_noise(profile: Profile, n: int, size: int) -> np.ndarray:
    """Realisation B's unit noise fields of the first ``n`` test galaxies (float32, (n, S, S))."""
    from shearbridge.sim.catalogue import STREAM_ID  # GalSim: imported when needed

    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        ss = np.random.SeedSequence(entropy=profile.seed, spawn_key=(STREAM_ID["test"], 2, i))
        out[i] = np.random.default_rng(ss).standard_normal((size, size), dtype=np.float32)
    return out


def run_yardstick(method: str, profile: Profile, sigma: float) -> dict[str, Any]:
    """Measure the first ``n_crlb`` test galaxies in realisations A and B; save estimates and
    flags."""
    from shearbridge.sim.datasets import load_dataset

    ds = load_dataset("test", profile).subset(slice(0, profile.n_crlb))
    psf, scale = np.asarray(ds.psf), ds.sim.pixel_scale_arcsec
    est = method_estimator(method, profile, sigma)
    out: dict[str, np.ndarray] = {}
    second = dataclasses.replace(ds, noise=second_noise(profile, len(ds), ds.sim.stamp_size_px))
    for name, real in (("a", ds), ("b", second)):
        res = est.measure(real.images(sigma), psf, scale, sigma)
        out[f"g_{name}"] = np.asarray(res.g, np.float64)
        out[f"flags_{name}"] = np.asarray(res.flags)
        if "response" in res.extra:
            out[f"response_{name}"] = np.asarray(res.extra["response"], np.float64)
        if "sigma_g" in res.extra:  # a predicted per-galaxy shear error: inverse-variance weights
            out[f"sigma_g_{name}"] = np.asarray(res.extra["sigma_g"], np.float64)
    out["g_true"] = np.stack([ds.labels["g1"], ds.labels["g2"]], axis=1)
    path = Layout(profile).result("yardstick", method, sigma, suffix=".npz")
    save_npz(path, **out)
    return {"method": method, "noise_sigma": sigma, "n": len(ds), "path": str(path)}


def _yardstick(args: Namespace) -> None:
    print_json(run_yardstick(args.method, profile_of(args), args.noise))


COMMANDS = (
    Command(
        "yardstick",
        "one method on the CRLB galaxies in two noise realisations (n_eff)",
        method_at_noise("bias_grid", "bias"),
        _yardstick,
    ),
)

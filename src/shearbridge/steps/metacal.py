"""Pipeline step: metacalibration of one method on the paired shear test at one noise level.

The method is run on the metacal images of the same shear-test galaxies as its raw bias result
(:mod:`shearbridge.steps.bias`): the ``noshear`` set, and each stamp sheared by ``+step`` and
``-step`` along the component its galaxy is sheared along
(:func:`shearbridge.stats.metacal_fourier.metacal_images`, with the correlated-noise fix), told
the round reconvolution PSF and the doubled noise variance. Its per-stamp response calibrates the
``noshear`` estimates (:func:`shearbridge.stats.bias.paired_metacal_bias`); the result holds the
calibrated ``m, c``, the same images' uncalibrated ``m*_raw`` and the mean response.

Fix-noise fields: one per galaxy and orientation, shared by its ``+g`` and ``-g`` stamps and
entering with the stamp's ``noise_sign``, so the antithetic pairs stay antithetic; stream
``metacal_noise`` of :mod:`shearbridge.config.seeds`, keyed by the galaxy and the orientation.
Methods that take the PSF as a parameter rather than an image (the moment networks) are told the
reconvolution PSF through ``with_psf``.
"""

from __future__ import annotations

import math
import time
from argparse import Namespace
from typing import Any

import numpy as np

from shearbridge import study
from shearbridge.config import ConfigError, Profile, seeds
from shearbridge.estimators.base import usable
from shearbridge.io import write_json
from shearbridge.stats.bias import (
    WILD_RESPONSE,
    label_ideal_bias,
    paired_metacal_bias,
    relative_to_ideal,
)
from shearbridge.steps.bias import N_BLOCKS
from shearbridge.layout import Layout
from shearbridge.runs import method_estimator
from shearbridge.steps.command import Command, method_at_noise, print_json, profile_of
from shearbridge.steps.measure import progress_bar

__all__ = ["run_metacal", "fix_noise_fields", "METACAL_KIND", "WILD_RESPONSE", "COMMANDS"]

#: Result kind (``results/<kind>/``) of the metacal-calibrated shear test.
METACAL_KIND = "bias_mcal"
RESPONSE_PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def fix_noise_fields(
    labels: Any, shape: tuple[int, int], sigma: float, root_seed: int
) -> np.ndarray:
    """The correlated-noise fix's white-noise image of every stamp (N, S, S): one field per galaxy
    (``pair_id``) and orientation, times the stamp's ``noise_sign``."""
    pid = np.asarray(labels["pair_id"]).astype(np.int64)
    orient = np.asarray(labels["orient"]).astype(np.int64)
    nsign = np.asarray(labels["noise_sign"], np.float64)
    out = np.empty((len(pid), *shape))
    cache: dict[tuple[int, int], np.ndarray] = {}
    for j, key in enumerate(zip(pid.tolist(), orient.tolist())):
        if key not in cache:
            cache[key] = seeds.rng(root_seed, "metacal_noise", *key).normal(0.0, sigma, shape)
        out[j] = nsign[j] * cache[key]
    return out


def run_metacal(method: str, profile: Profile, sigma: float) -> dict[str, Any]:
    """Metacal-calibrated m, c of ``method`` on the round-PSF shear test at ``sigma``, as JSON."""
    from shearbridge.sim.datasets import load_dataset
    from shearbridge.sim.stamps import SHEAR_TEST_STAMPS  # GalSim, SciPy: imported when needed
    from shearbridge.stats.metacal_fourier import METACAL_STEP, metacal_images

    if method not in study.names("metacal", available_only=False):
        raise ConfigError(
            f"{method!r} is not metacalibrated; the registry's metacal methods: "
            f"{study.names('metacal', available_only=False)}"
        )
    ds = load_dataset("shear", profile)
    n_gal = len(ds) // SHEAR_TEST_STAMPS
    n_used = study.get_method(method).shear_galaxies(n_gal)
    if n_used < n_gal:  # the galaxies of the raw bias result
        ds = ds.subset(slice(0, n_used * SHEAR_TEST_STAMPS))
    images = ds.images(sigma)
    t0 = time.perf_counter()
    fix = fix_noise_fields(ds.labels, images.shape[1:], sigma, profile.seed)
    mc = metacal_images(images, np.asarray(ds.psf), step=METACAL_STEP, fix_noise=fix)
    t_images = time.perf_counter() - t0
    comp = np.asarray(ds.labels["pair_id"]).astype(np.int64) % 2 + 1  # 1 or 2
    est = method_estimator(method, profile, sigma)
    if hasattr(est, "with_psf"):
        est = est.with_psf(mc.psf_image)
    told = sigma * math.sqrt(2.0)  # the fix doubles the noise variance
    scale = ds.sim.pixel_scale_arcsec
    sets = {"noshear": mc.noshear, "plus": mc.along(comp, +1), "minus": mc.along(comp, -1)}
    est.measure(images[:8], mc.psf_image, scale, told)  # compile outside the timing
    res = {}
    t0 = time.perf_counter()
    with progress_bar(3 * len(images), f"{method} metacal at noise {sigma:g}") as bar:
        for name, imgs in sets.items():
            if hasattr(est, "progress"):
                est.progress = bar.update
            res[name] = est.measure(imgs, mc.psf_image, scale, told)
            if not hasattr(est, "progress"):
                bar.update(len(imgs))
    wall = time.perf_counter() - t0
    idx = np.arange(len(images))
    response = (res["plus"].g[idx, comp - 1] - res["minus"].g[idx, comp - 1]) / (2.0 * METACAL_STEP)
    flags = np.zeros(len(images), np.int64)
    for r in res.values():
        flags |= (~usable(r.g, r.flags)).astype(np.int64)
    bias = paired_metacal_bias(
        res["noshear"].g, response, ds.labels, flags=flags, n_blocks=N_BLOCKS
    )
    ok = usable(res["noshear"].g, flags) & np.isfinite(response)
    ideal = label_ideal_bias(ds.labels, flags=(~ok).astype(np.int64), n_blocks=N_BLOCKS)
    bias.update(relative_to_ideal(bias, ideal))
    finite = response[np.isfinite(response)]
    wild = float(np.mean(np.abs(finite) > WILD_RESPONSE)) if finite.size else float("nan")
    result = {
        "method": method,
        "noise_sigma": sigma,
        "profile": profile.name,
        "dataset": "shear",
        "response_percentiles": {
            str(q): float(v)
            for q, v in zip(RESPONSE_PERCENTILES, np.percentile(finite, RESPONSE_PERCENTILES))
        }
        if finite.size
        else {},
        "wild_response_fraction": wild,
        "wild_response": WILD_RESPONSE,
        "n_stamps": len(images),
        "n_galaxies_measured": n_used,
        "n_galaxies_set": n_gal,
        "step": METACAL_STEP,
        "reconvolution_sigma_px": mc.sigma_px,
        "noise_told": told,
        "fix_noise": True,
        "images_wall_s": t_images,
        "wall_s": wall,
        "n_flagged": int(np.sum(flags != 0)),
        **bias,
    }
    write_json(Layout(profile).result(METACAL_KIND, method, sigma), result)
    return result


def _metacal(args: Namespace) -> None:
    print_json(run_metacal(args.method, profile_of(args), args.noise))


COMMANDS = (
    Command(
        "metacal",
        "metacal-calibrated m and c of one method on the paired shear-test set",
        method_at_noise("metacal"),
        _metacal,
    ),
)

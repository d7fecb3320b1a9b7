"""Pipeline step: m and c of one method from a shear-test set at one noise level.

Two sets (:data:`BIAS_SETS`): ``shear`` (round PSF; m and c) and ``shear_psf`` (the PSF sheared
by :data:`shearbridge.sim.catalogue.PSF_TEST_G` along ``g1``; c there is the PSF leakage,
``alpha = c1 / g_psf``). Every result also carries the label-ideal estimator's m and c on the
same galaxies (the design's floor) and the method's m relative to it
(:func:`shearbridge.stats.bias.relative_to_ideal`).

The metacal-calibrated test is :mod:`shearbridge.steps.metacal`; an estimator that returns an
ellipticity with its shear response (``extra["response"]``, AnaCal) is scored by its ensemble shear
``sum e / sum R`` (:func:`shearbridge.stats.bias.paired_ensemble_bias`).
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from typing import Any

import numpy as np

from shearbridge import study
from shearbridge.config import ConfigError, Profile
from shearbridge.estimators.base import usable
from shearbridge.io import write_json
from shearbridge.stats.bias import (
    label_ideal_bias,
    paired_ensemble_bias,
    paired_shear_bias,
    relative_to_ideal,
)
from shearbridge.layout import Layout
from shearbridge.steps.command import Command, method_at_noise, print_json, profile_of
from shearbridge.steps.measure import timed_result

__all__ = ["run_bias", "BIAS_SETS", "N_BLOCKS", "COMMANDS"]

#: Result kind (``results/<kind>/``) -> shear-test dataset.
BIAS_SETS = {"bias": "shear", "bias_psf": "shear_psf"}
#: Jackknife blocks of galaxies.
N_BLOCKS = 50


def run_bias(method: str, profile: Profile, sigma: float, kind: str = "bias") -> dict[str, Any]:
    """m and c from the shear-test set of ``kind`` at one noise level, as JSON.

    ``kind`` is one of :data:`BIAS_SETS`.
    """
    if kind not in BIAS_SETS:
        raise ConfigError(f"unknown shear test {kind!r}; known: {sorted(BIAS_SETS)}")
    from shearbridge.sim.datasets import load_dataset
    from shearbridge.sim.stamps import SHEAR_TEST_STAMPS  # GalSim, JAX: imported when needed
    from shearbridge.stats.crlb import matched_filter_snr

    ds = load_dataset(BIAS_SETS[kind], profile)
    n_gal = len(ds) // SHEAR_TEST_STAMPS
    n_used = study.get_method(method).shear_galaxies(n_gal)
    if n_used < n_gal:  # the first galaxies: a random subset of the same population
        ds = ds.subset(slice(0, n_used * SHEAR_TEST_STAMPS))
    images = ds.images(sigma)
    res, wall = timed_result(
        method, profile, sigma, images, np.asarray(ds.psf), ds.sim.pixel_scale_arcsec
    )
    flags = np.asarray(res.flags)
    if "response" in res.extra:  # an ellipticity with its shear response (AnaCal): ensemble shear
        bias = paired_ensemble_bias(
            res.g, res.extra["response"], ds.labels, flags=flags, n_blocks=N_BLOCKS
        )
        bias["shear_from"] = "sum e / sum R (ensemble response)"
        bias["config"] = {
            k: v for k, v in res.extra.items() if isinstance(v, (str, bool, int, float))
        }
    else:
        bias = paired_shear_bias(res.g, ds.labels, flags=flags, n_blocks=N_BLOCKS)
    ok = usable(res.g, flags, res.extra.get("response"))  # the galaxy set the method was scored on
    ideal = label_ideal_bias(ds.labels, flags=(~ok).astype(np.int64), n_blocks=N_BLOCKS)
    bias.update(relative_to_ideal(bias, ideal))
    if ds.sim.psf_g1 or ds.sim.psf_g2:
        bias["psf_g"] = [float(ds.sim.psf_g1), float(ds.sim.psf_g2)]
    snr = np.asarray(ds.labels["flux"]) / (ds.sim.stamp_size_px * sigma)  # ShearNet's F / (L sigma)
    snr_mf = matched_filter_snr(ds.images(0.0), sigma)
    result = {
        "method": method,
        "noise_sigma": sigma,
        "profile": profile.name,
        "dataset": BIAS_SETS[kind],
        "n_stamps": len(images),
        "n_galaxies_measured": n_used,
        "n_galaxies_set": n_gal,
        "median_snr": float(np.median(snr)),
        "median_snr_mf": float(np.median(snr_mf)),
        "wall_s": wall,
        "n_flagged": int(np.sum(flags != 0)),
        **bias,
    }
    write_json(Layout(profile).result(kind, method, sigma), result)
    return result


def _arguments(p: ArgumentParser) -> None:
    method_at_noise("bias_grid", "bias")(p)
    p.add_argument(
        "--psf-test", action="store_true", help="the test with the anisotropic PSF (leakage)"
    )


def _bias(args: Namespace) -> None:
    kind = "bias_psf" if args.psf_test else "bias"  # the anisotropic-PSF set: results kind bias_psf
    print_json(run_bias(args.method, profile_of(args), args.noise, kind=kind))


COMMANDS = (
    Command(
        "bias",
        "m and c of one method on the paired shear-test set at one noise level",
        _arguments,
        _bias,
    ),
)

"""Pipeline step: what sets the low-noise error floor (issue 15, item 4).

At the profile's lowest noise level (``profile.noise_grid[0]``), on the comparison set
(the first ``profile.n_crlb`` test galaxies, with :mod:`shearbridge.steps.crlb`'s bound):

``binned``
    RMSE/CRLB (RMS ratio, and the median and trimmed ratios of
    :func:`shearbridge.diagnosis.floor.error_ratios`, with bootstrap errors) in bins of the
    true galaxy size (quantile bins :data:`SIZE_QUANTILES` of the comparison set) and of
    the fraction of the PSF-convolved flux outside the stamp (:data:`FLUX_EDGES`), for
    each method of :data:`FLOOR_METHODS` whose comparison result
    (``results/compare/<method>/noise<tag>.npz``) exists. Each method's flagged or
    non-finite estimates are left out of its own rows (``n_flagged``).
``floor``
    The moments-only estimator (adaptive-moment shears at the configured
    :data:`shearbridge.models.moments.WEIGHT_FRACTIONS`, affine read-out fitted by least
    squares on the first :data:`N_FIT` objects of the trainer's training split) under the
    numerics variants :data:`FLOOR_VARIANTS` (:func:`shearbridge.diagnosis.floor.floor_experiment`):
    ratios over all galaxies and without the 5% largest, with paired-bootstrap deltas
    against the reference.
``clean``
    The reference estimator's error split into its noise-free part (the same read-out
    applied to the noise-free stamps) and the rest (noisy minus noise-free estimate).

Written to ``src/data/<profile>/diagnosis/floor.json`` (``Layout.diagnosis``). The summary
``floor`` (:mod:`shearbridge.summaries.floor`) combines it with the tuning step's
(:mod:`shearbridge.steps.tune`) into ``src/data/summary/floor.json`` for the figure
and number scripts. Run on its own::

    python -m shearbridge floor --profile quick
    python -m shearbridge summarize floor --profile quick
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge.layout import Layout
from shearbridge.config import Profile, noise_tag, seeds
from shearbridge.diagnosis.floor_plan import (
    DROP_LARGEST,
    FLOOR_METHODS,
    FLUX_EDGES,
    N_FIT,
    SIZE_QUANTILES,
    VARIANT_KEYS,
)
from shearbridge.io import write_json
from shearbridge.steps.command import profile_command

__all__ = ["fit_split", "run_floor", "COMMANDS"]

# sub-keys of the bootstrap streams (stream "compare_bootstrap", first extra key _KEY: apart
# from the comparison's own draws, which have one extra key)
_KEY = 0xF100


def _variants():
    from shearbridge.diagnosis.floor import DEFAULT_VARIANTS

    by_name = {v.name: v for v in DEFAULT_VARIANTS}
    return tuple(by_name[n] for n in VARIANT_KEYS)


def fit_split(n: int, profile: Profile) -> tuple[np.ndarray, np.ndarray, int]:
    """The trainer's (training, validation) split of ``n`` training objects: the shapenet
    experiment's seed at the lowest noise level and ``profile.val_fraction``; and that seed."""
    from shearbridge.config.experiments import get_experiment
    from shearbridge.train.data import split_indices

    seed = get_experiment("shapenet", profile, profile.noise_grid[0]).train.seed
    tr, va = split_indices(n, profile.val_fraction, seed)
    return tr, va, int(seed)


def _rng(profile: Profile, *keys: int) -> np.random.Generator:
    return seeds.rng(profile.seed, "compare_bootstrap", _KEY, *keys)


def _method_errors(
    profile: Profile, method: str, sigma: float, true: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    from shearbridge.results import load_measured

    path = Layout(profile).result("compare", method, sigma, suffix=".npz")
    if not path.exists():
        return None
    err, ok, _, t = load_measured(profile, method, sigma)
    if len(t) != len(true) or not np.allclose(t, true):
        raise ValueError(
            f"{path}: its galaxies are not the comparison set's first {len(true)} test objects"
        )
    return err, ok


def run_floor(profile: Profile) -> Path:
    """Binned ratios, the floor variants and the noise-free split at the lowest level; see the
    module."""
    from shearbridge.diagnosis import floor as F
    from shearbridge.models.moments import WEIGHT_FRACTIONS
    from shearbridge.sim.datasets import load_dataset
    from shearbridge.results import load_crlb

    t0 = time.perf_counter()
    sigma = float(profile.noise_grid[0])
    test, train = load_dataset("test", profile), load_dataset("train", profile)
    sim, psf = test.sim, test.sim.psf_sigma_px
    n = min(profile.n_crlb, len(test))
    crlb = load_crlb(profile, sigma)[:n]
    true = np.asarray(test.targets(2)[:n], np.float64)
    labels = {k: np.asarray(v)[:n] for k, v in test.labels.items() if np.ndim(v) == 1}
    q = F.galaxy_quantities(labels, sim)
    size, out_flux = q["size_px"], q["out_flux"]
    n_boot = profile.bootstrap
    fractions = tuple(float(f) for f in WEIGHT_FRACTIONS)

    # (a) binned ratios of the compared methods
    size_edges = [float(e) for e in np.quantile(size, SIZE_QUANTILES)]
    binned: dict[str, Any] = {}
    for i, m in enumerate(FLOOR_METHODS):
        got = _method_errors(profile, m, sigma, true)
        if got is None:
            continue
        e, ok = got
        binned[m] = {
            "n": int(n),
            "n_flagged": int((~ok).sum()),
            "all": F.bootstrap_ratios(e[ok], crlb[ok], _rng(profile, 1, i), n_boot),
        }
        for j, (name, x, edges) in enumerate(
            (("size_px", size, size_edges), ("out_flux", out_flux, FLUX_EDGES))
        ):
            binned[m][name] = F.binned_ratios(
                e[ok], crlb[ok], x[ok], _rng(profile, 2, i, j), list(edges), n_boot
            )
        lowflux = ok & (out_flux < FLUX_EDGES[1])
        binned[m]["low_flux"] = F.bootstrap_ratios(
            e[lowflux], crlb[lowflux], _rng(profile, 3, i), n_boot
        )

    # (b) the moments-only estimator's numerics, read-outs fitted on the training split
    tr, _, split_seed = fit_split(len(train), profile)
    fit = tr[:N_FIT]
    train_x = np.asarray(train.images(sigma)[fit])
    train_t = np.asarray(train.targets(2), np.float64)[fit]
    test_x = np.asarray(test.images(sigma)[:n])
    boot_seed = int(
        seeds.seed_sequence(profile.seed, "compare_bootstrap", _KEY, 4).generate_state(1)[0]
    )
    variants = _variants()
    rows = F.floor_experiment(
        train_x,
        train_t,
        test_x,
        true,
        crlb,
        size,
        psf,
        seed=boot_seed,
        variants=variants,
        fractions=fractions,
        drop_largest=DROP_LARGEST,
        n_boot=n_boot,
    )
    for r in rows:
        r["key"] = VARIANT_KEYS[r["name"]]

    # (c) the reference's error: noise-free part (same read-out on noise-free stamps) + noise part
    ref = variants[0]
    coef = F.fit_affine(F.moment_shears(train_x, psf, fractions, ref), train_t)
    e_noisy = F.apply_affine(F.moment_shears(test_x, psf, fractions, ref), coef) - true
    e_clean = (
        F.apply_affine(F.moment_shears(np.asarray(test.clean[:n]), psf, fractions, ref), coef)
        - true
    )
    keep = size <= np.quantile(size, 1.0 - DROP_LARGEST)
    clean: dict[str, Any] = {}
    for k, (part, e) in enumerate(
        (("noisy", e_noisy), ("noise_free", e_clean), ("noise_part", e_noisy - e_clean))
    ):
        clean[part] = {
            "all": F.bootstrap_ratios(e, crlb, _rng(profile, 5, k, 0), n_boot),
            "no_largest": F.bootstrap_ratios(e[keep], crlb[keep], _rng(profile, 5, k, 1), n_boot),
        }
    clean["readout"] = coef.tolist()

    result = {
        "profile": profile.name,
        "noise_sigma": sigma,
        "noise_tag": noise_tag(sigma),
        "n": int(n),
        "n_boot": int(n_boot),
        "psf_sigma_px": float(psf),
        "weight_fractions": list(fractions),
        "methods": list(binned),
        "missing_methods": [m for m in FLOOR_METHODS if m not in binned],
        "flagged": "each method's flagged or non-finite estimates are left out of its own rows "
        "(n_flagged)",
        "size_edges_px": size_edges,
        "size_quantiles": list(SIZE_QUANTILES),
        "flux_edges": list(FLUX_EDGES),
        "binned": binned,
        "floor": {
            "variants": [VARIANT_KEYS[v.name] for v in variants],
            "rows": rows,
            "n_fit": int(len(fit)),
            "split_seed": split_seed,
            "drop_largest": DROP_LARGEST,
        },
        "clean": clean,
        "n_major_gt_20px": int(np.sum(q["obs_major_px"] > 20)),
        "wall_s": time.perf_counter() - t0,
    }
    path = Layout(profile).diagnosis("floor.json")
    write_json(path, result)
    return path


COMMANDS = (
    profile_command(
        "floor",
        "what sets the low-noise error floor: error/CRLB by galaxy "
        "size and out-of-stamp flux, the moments-only numerics (floor.json)",
        run_floor,
    ),
)

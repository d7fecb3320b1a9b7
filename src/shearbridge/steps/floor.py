"""Pipeline step: what sets the low-noise error floor (issue 15, item 4).

At the profile's lowest noise level (``profile.noise_grid[0]``), on the comparison set
(the first ``profile.n_crlb`` test galaxies, with :mod:`shearbridge.steps.crlb`'s bound):

``binned``
    RMSE/CRLB (RMS ratio, and the median and trimmed ratios of
    :func:`shearbridge.diagnosis.floor.error_ratios`, with bootstrap errors) in bins of the
    true galaxy size (quantile bins :data:`SIZE_QUANTILES` of the comparison set) and of
    the fraction of the PSF-convolved flux outside the stamp (:data:`FLUX_EDGES`), for
    each method of :data:`BINNED_METHODS` whose comparison result
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

Written to ``src/data/<profile>/diagnosis/floor.json`` (:func:`floor_path`).
:func:`write_summary` combines it with the tuning step's
(:mod:`shearbridge.steps.tune`) into ``src/data/summary/floor.json`` for the figure
and number scripts. Run on its own::

    python -m shearbridge.steps.floor --profile quick
    python -m shearbridge.steps.floor --summarize --profile quick
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import paths
from shearbridge.config import Profile, get_profile, noise_tag, seeds
from shearbridge.errors import MissingFileError
from shearbridge.io import read_json, write_json

__all__ = ["N_FIT", "SIZE_QUANTILES", "FLUX_EDGES", "BINNED_METHODS", "FLOOR_VARIANTS", "VARIANT_KEYS",
           "floor_path", "tuning_path", "summary_path", "fit_split", "run_floor", "write_summary"]

#: training-split objects the affine read-outs are fitted on (the first ones of the split)
N_FIT = 8192
#: quantiles of the comparison set's true sizes that bound the size bins (top 5% alone)
SIZE_QUANTILES = (0.0, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0)
#: bin edges of the out-of-stamp flux fraction
FLUX_EDGES = (0.0, 1e-9, 1e-6, 1e-4, 1e-3, 1e-2, 1.0)
#: the methods binned by size and truncation
BINNED_METHODS = ("shapenet", "moments_affine", "hsm_regauss", "mlfit")
#: fraction of the largest galaxies left out of the "no_largest" subset
DROP_LARGEST = 0.05
#: short keys (names of \variable files) of the variants' names
VARIANT_KEYS = {"reference": "reference", "float64": "float64", "n_iter=16": "niter16", "no pixel": "nopixel"}
# sub-keys of the bootstrap streams (stream "compare_bootstrap", first extra key _KEY: apart
# from the comparison's own draws, which have one extra key)
_KEY = 0xF100


def _variants():
    from shearbridge.diagnosis.floor import DEFAULT_VARIANTS

    by_name = {v.name: v for v in DEFAULT_VARIANTS}
    return tuple(by_name[n] for n in VARIANT_KEYS)


#: reference, float64, 16 weight iterations, no pixel term (one change at a time)
FLOOR_VARIANTS = tuple(VARIANT_KEYS)


def floor_path(profile: Profile) -> Path:
    return paths.profile_dir(profile) / "diagnosis" / "floor.json"


def tuning_path(profile: Profile) -> Path:
    """Where :mod:`shearbridge.steps.tune` writes its choice (here so that this module, which
    summarises both, does not import that one: it imports this)."""
    return paths.profile_dir(profile) / "diagnosis" / "weight_fractions.json"


def summary_path() -> Path:
    from shearbridge.summaries.store import summary_dir

    return summary_dir() / "floor.json"


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


def _method_errors(profile: Profile, method: str, sigma: float, true: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    from shearbridge.steps.measure import load_measured, result_path

    path = result_path(profile, method, sigma).with_suffix(".npz")
    if not path.exists():
        return None
    err, ok, _, t = load_measured(profile, method, sigma)
    if len(t) != len(true) or not np.allclose(t, true):
        raise ValueError(f"{path}: its galaxies are not the comparison set's first {len(true)} test objects")
    return err, ok


def run_floor(profile: Profile) -> Path:
    """Binned ratios, the floor variants and the noise-free split at the lowest level; see the module."""
    from shearbridge.diagnosis import floor as F
    from shearbridge.models.moments import WEIGHT_FRACTIONS
    from shearbridge.sim.datasets import load_dataset
    from shearbridge.steps.crlb import load_crlb

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
    for i, m in enumerate(BINNED_METHODS):
        got = _method_errors(profile, m, sigma, true)
        if got is None:
            continue
        e, ok = got
        binned[m] = {"n": int(n), "n_flagged": int((~ok).sum()),
                     "all": F.bootstrap_ratios(e[ok], crlb[ok], _rng(profile, 1, i), n_boot)}
        for j, (name, x, edges) in enumerate((("size_px", size, size_edges), ("out_flux", out_flux, FLUX_EDGES))):
            binned[m][name] = F.binned_ratios(e[ok], crlb[ok], x[ok], _rng(profile, 2, i, j), list(edges), n_boot)
        lowflux = ok & (out_flux < FLUX_EDGES[1])
        binned[m]["low_flux"] = F.bootstrap_ratios(e[lowflux], crlb[lowflux], _rng(profile, 3, i), n_boot)

    # (b) the moments-only estimator's numerics, read-outs fitted on the training split
    tr, _, split_seed = fit_split(len(train), profile)
    fit = tr[:N_FIT]
    train_x = np.asarray(train.images(sigma)[fit])
    train_t = np.asarray(train.targets(2), np.float64)[fit]
    test_x = np.asarray(test.images(sigma)[:n])
    boot_seed = int(seeds.seed_sequence(profile.seed, "compare_bootstrap", _KEY, 4).generate_state(1)[0])
    variants = _variants()
    rows = F.floor_experiment(train_x, train_t, test_x, true, crlb, size, psf, seed=boot_seed,
                              variants=variants, fractions=fractions, drop_largest=DROP_LARGEST, n_boot=n_boot)
    for r in rows:
        r["key"] = VARIANT_KEYS[r["name"]]

    # (c) the reference's error: noise-free part (same read-out on noise-free stamps) + noise part
    ref = variants[0]
    coef = F.fit_affine(F.moment_shears(train_x, psf, fractions, ref), train_t)
    e_noisy = F.apply_affine(F.moment_shears(test_x, psf, fractions, ref), coef) - true
    e_clean = F.apply_affine(F.moment_shears(np.asarray(test.clean[:n]), psf, fractions, ref), coef) - true
    keep = size <= np.quantile(size, 1.0 - DROP_LARGEST)
    clean: dict[str, Any] = {}
    for k, (part, e) in enumerate((("noisy", e_noisy), ("noise_free", e_clean), ("noise_part", e_noisy - e_clean))):
        clean[part] = {"all": F.bootstrap_ratios(e, crlb, _rng(profile, 5, k, 0), n_boot),
                       "no_largest": F.bootstrap_ratios(e[keep], crlb[keep], _rng(profile, 5, k, 1), n_boot)}
    clean["readout"] = coef.tolist()

    result = {
        "profile": profile.name, "noise_sigma": sigma, "noise_tag": noise_tag(sigma), "n": int(n),
        "n_boot": int(n_boot), "psf_sigma_px": float(psf), "weight_fractions": list(fractions),
        "methods": list(binned), "missing_methods": [m for m in BINNED_METHODS if m not in binned],
        "flagged": "each method's flagged or non-finite estimates are left out of its own rows (n_flagged)",
        "size_edges_px": size_edges, "size_quantiles": list(SIZE_QUANTILES), "flux_edges": list(FLUX_EDGES),
        "binned": binned,
        "floor": {"variants": [VARIANT_KEYS[v.name] for v in variants], "rows": rows,
                  "n_fit": int(len(fit)), "split_seed": split_seed, "drop_largest": DROP_LARGEST},
        "clean": clean,
        "n_major_gt_20px": int(np.sum(q["obs_major_px"] > 20)),
        "wall_s": time.perf_counter() - t0,
    }
    path = floor_path(profile)
    write_json(path, result)
    return path


def write_summary(profile: Profile) -> Path:
    """``src/data/summary/floor.json``: this step's result and the tuning step's, one file."""
    parts = {}
    for key, path, module in (("floor", floor_path(profile), "floor"),
                              ("tuning", tuning_path(profile), "tune")):
        if not path.exists():
            raise MissingFileError(f"missing {path}: run `python -m shearbridge.steps.{module} "
                                   f"--profile {profile.name}`")
        parts[key] = read_json(path)
    out = summary_path()
    write_json(out, {"profile": profile.name, **parts})
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m shearbridge.steps.floor", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", required=True, help="profile name, e.g. quick or paper")
    ap.add_argument("--summarize", action="store_true",
                    help="write src/data/summary/floor.json from this step's and the tuning step's results")
    args = ap.parse_args(argv)
    profile = get_profile(args.profile)
    print(write_summary(profile) if args.summarize else run_floor(profile))


if __name__ == "__main__":
    main()

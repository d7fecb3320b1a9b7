"""The seed streams of the study: one table, one tag per use of randomness.

Every random draw of the pipeline starts from the profile's root seed
(:attr:`shearbridge.config.Profile.seed`) and a stream tag from :data:`SEED_STREAMS`,
as ``numpy.random.SeedSequence([root, tag, *keys])`` (:func:`seed_sequence`). A tag is
never reused for another purpose and never renumbered: changing one changes the
numbers of the paper. Dataset streams (the galaxies and their noise fields) are the
``STREAM_ID`` spawn keys of :mod:`shearbridge.sim.catalogue`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SEED_STREAMS", "seed_sequence", "rng"]

SEED_STREAMS: dict[str, int] = {
    "train_val_split": 0x5B1,  # shuffled training / validation split of a training set
    "evaluate_bootstrap": 0xB007,  # bootstrap errors of a trained run's test metrics
    "compare_bootstrap": 0xC0DE,  # bootstrap errors of RMSE/CRLB in the comparison
    "robustness_bootstrap": 0xB0B,  # bootstrap errors of RMSE/CRLB on the robustness sets
    "learning_bootstrap": 0x1EA,  # bootstrap errors of the learning curves
    "ablation_bootstrap": 0xAB1,  # paired bootstrap of the ablation's RMSE factors
    # the correlated-noise fix of the metacal images (per galaxy, orientation)
    "metacal_noise": 0x3CA1,
    "timing_train_batches": 0x71E,  # batch indices of the timed training steps
    "probe_permutation": 0x7157,  # shuffle of the layer probes' training features
    # bootstrap errors on the galaxies no method flags (comparison summary)
    "common_bootstrap": 0xC0AA,
    # the population study's training / validation galaxies (key: split)
    "population_galaxies": 0x90B1,
    "population_cells": 0x90C3,  # its test galaxies (keys: galaxy family, PSF family)
    # the noise of its cells (keys: galaxy family, PSF family, noise level)
    "population_noise": 0x90D5,
    "population_bootstrap": 0x90E7,  # bootstrap errors of its cell table (same keys)
    # the galaxies of its cells' shear tests (keys: galaxy family, PSF family)
    "population_shear": 0x90F9,
    # their noise fields (keys: galaxy family, PSF family, noise level)
    "population_shear_noise": 0x910B,
    # the correlated-noise fix of their metacal images (same keys)
    "population_metacal_noise": 0x911D,
    # the survey-scale shear test's galaxies (keys: chunk, group)
    "survey_galaxies": 0x5A01,
    # their noise fields (keys: chunk, group, level index)
    "survey_noise": 0x5A13,
    # the correlated-noise fix of their metacal images (same keys)
    "survey_metacal_noise": 0x5A25,
    # the seed of a seeded estimator (AnaCal's renoising) in one of them (same keys)
    "survey_estimator": 0x5A37,
}


def seed_sequence(root: int, stream: str, *keys: int) -> np.random.SeedSequence:
    """``SeedSequence([root, SEED_STREAMS[stream], *keys])``; KeyError names the known streams."""
    try:
        tag = SEED_STREAMS[stream]
    except KeyError:
        raise KeyError(f"unknown seed stream {stream!r}; known: {sorted(SEED_STREAMS)}") from None
    return np.random.SeedSequence([int(root), tag, *(int(k) for k in keys)])


def rng(root: int, stream: str, *keys: int) -> np.random.Generator:
    """A generator on :func:`seed_sequence` ``(root, stream, *keys)``."""
    return np.random.default_rng(seed_sequence(root, stream, *keys))

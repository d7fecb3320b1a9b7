"""The galaxies and noise of one group of the survey-scale shear test, from its index alone.

Group ``g`` of chunk ``c`` of a tier (:class:`shearbridge.config.survey.SurveyConfig`) draws its
``group_galaxies`` galaxies from the population's training families (each galaxy its own family and
its own PSF) with the seed stream ``survey_galaxies`` keyed by ``(c, g)``, expands each into the 16
stamps of the paired shear test (:func:`shearbridge.sim.stamps.expand_shear_test`, shear
``applied_shear`` along ``pair_id % 2``), and renders the 8 distinct noise-free images per galaxy
(a ``-n`` stamp is its ``+n`` neighbour's image). Its noise at level ``l`` is one white field per
galaxy and orientation from ``survey_noise`` keyed by ``(c, g, l)``, added with the stamp's
``noise_sign``; the metacal correlated-noise fix has its own stream, ``survey_metacal_noise``.
Nothing depends on which machine, job or order computes a group: a rerun gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from shearbridge.config import SimConfig
from shearbridge.config.seeds import rng as seeded_rng
from shearbridge.config.survey import SurveyConfig
from shearbridge.sim.population import draw_population, render_population, training_families
from shearbridge.sim.stamps import SHEAR_TEST_ORIENTATIONS, expand_shear_test

__all__ = ["group_labels", "render_group", "group_noise", "metacal_fix_noise"]


def _check_index(tier: SurveyConfig, chunk: int, group: int) -> None:
    if not 0 <= chunk < tier.n_chunks:
        raise ValueError(f"chunk {chunk} outside tier {tier.name}'s 0..{tier.n_chunks - 1}")
    if not 0 <= group < tier.groups_per_chunk:
        raise ValueError(f"group {group} outside 0..{tier.groups_per_chunk - 1}")


def group_labels(tier: SurveyConfig, root_seed: int, chunk: int, group: int) -> dict[str, Any]:
    """Labels of the group's 16 ``group_galaxies`` stamps (population labels plus the shear test's:
    ``pair_id`` counts galaxies within the group)."""
    _check_index(tier, chunk, group)
    cfg = tier.population
    galaxies, psfs = training_families(cfg)
    base = draw_population(
        cfg,
        tier.group_galaxies,
        seeded_rng(root_seed, "survey_galaxies", chunk, group),
        galaxies=galaxies,
        psfs=psfs,
    )
    return expand_shear_test(SimConfig(applied_shear=tier.applied_shear), base)


def render_group(
    tier: SurveyConfig,
    labels: dict[str, Any],
    progress: Callable[[int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free stamps (16 per galaxy) and each stamp's PSF image, float32 ``(N, S, S)`` each;
    the 8 distinct images of a galaxy are rendered once."""
    plus = np.flatnonzero(np.asarray(labels["noise_sign"]) > 0)
    stamps, psfs = render_population(
        tier.population, {k: np.asarray(v)[plus] for k, v in labels.items()}, progress
    )
    return np.repeat(stamps, 2, axis=0), np.repeat(psfs, 2, axis=0)


def _fields(
    tier: SurveyConfig, root_seed: int, stream: str, chunk: int, group: int, level: int, shape
) -> np.ndarray:
    n_fields = tier.group_galaxies * SHEAR_TEST_ORIENTATIONS
    return seeded_rng(root_seed, stream, chunk, group, level).standard_normal(
        (n_fields, *shape), dtype=np.float32
    )


def _stamp_fields(
    tier: SurveyConfig,
    root_seed: int,
    stream: str,
    chunk: int,
    group: int,
    level: int,
    labels: dict[str, Any],
    shape: tuple[int, int],
) -> np.ndarray:
    """Unit-sigma fields of stream ``stream`` laid out on the stamps (float32 ``(N, S, S)``): one
    per galaxy and orientation, times the stamp's ``noise_sign``."""
    _check_index(tier, chunk, group)
    fields = _fields(tier, root_seed, stream, chunk, group, level, shape)
    fid = np.asarray(labels["pair_id"]) * SHEAR_TEST_ORIENTATIONS + np.asarray(labels["orient"])
    return fields[fid] * np.asarray(labels["noise_sign"], np.float32)[:, None, None]


def group_noise(
    tier: SurveyConfig,
    root_seed: int,
    chunk: int,
    group: int,
    level: int,
    labels: dict[str, Any],
    shape: tuple[int, int],
) -> np.ndarray:
    """The unit-sigma noise of every stamp at level index ``level`` (float32 ``(N, S, S)``): one
    field per galaxy and orientation, times the stamp's ``noise_sign``."""
    return _stamp_fields(tier, root_seed, "survey_noise", chunk, group, level, labels, shape)


def metacal_fix_noise(
    tier: SurveyConfig,
    root_seed: int,
    chunk: int,
    group: int,
    level: int,
    labels: dict[str, Any],
    shape: tuple[int, int],
) -> np.ndarray:
    """The metacal correlated-noise fix's unit-sigma fields, laid out like :func:`group_noise`."""
    return _stamp_fields(
        tier, root_seed, "survey_metacal_noise", chunk, group, level, labels, shape
    )

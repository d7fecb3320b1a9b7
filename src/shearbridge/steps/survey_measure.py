"""The measuring half of the survey-scale shear test (:mod:`shearbridge.steps.survey`): one group
of galaxies rendered, noised at every level, measured by every method (metacalibrated where its
study asks) and reduced to sums; pure apart from the clock."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from shearbridge.config import noise_tag
from shearbridge.config.survey import SurveyConfig
from shearbridge.stats.bias import N_SLOTS as SHEAR_TEST_STAMPS  # no GalSim at import

__all__ = ["SURVEY_STUDIES", "MF_NORM_EDGES", "survey_methods", "run_groups", "median_snr"]

#: The registry's studies the test measures, and the suffix of their keys (``<method><suffix>``).
SURVEY_STUDIES = {"survey": "", "survey_metacal": "_mcal"}


#: Bins of a galaxy's noise-free matched-filter norm ``||I||`` (image units): 20 per decade.
MF_NORM_EDGES = np.logspace(-3, 2, 101)


def median_snr(histograms: Sequence[Sequence[int]], sigma: float) -> float:
    """The median matched-filter S/N at noise ``sigma`` of the galaxies counted in
    ``histograms`` (added), interpolated within its bin (log-uniform)."""
    counts = np.sum(np.asarray(histograms, np.float64).reshape(-1, len(MF_NORM_EDGES) - 1), axis=0)
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    if cum[-1] <= 0:
        raise ValueError("no galaxies counted")
    i = int(np.searchsorted(cum, cum[-1] / 2.0, side="left"))
    i = min(max(i, 1), len(counts))
    lo, hi = np.log(MF_NORM_EDGES[i - 1]), np.log(MF_NORM_EDGES[i])
    frac = (cum[-1] / 2.0 - cum[i - 1]) / max(counts[i - 1], 1.0)
    return float(np.exp(lo + frac * (hi - lo)) / sigma)


def survey_methods() -> list[tuple[str, str, str]]:
    """``(key, method, study)`` of every method the test measures, registry order."""
    from shearbridge import study

    return [
        (f"{m}{suffix}", m, st) for st, suffix in SURVEY_STUDIES.items() for m in study.names(st)
    ]


def _for_group(est: Any, seed: int, chunk: int, group: int, level: int) -> Any:
    """An estimator with a ``seed`` (AnaCal's renoising images, the fit's extra starts) reseeded
    from ``(chunk, group, level)``: each group's numbers are its own, whichever job and order
    computes it, and no two groups share a renoising image."""
    if not (dataclasses.is_dataclass(est) and hasattr(est, "seed")):
        return est
    from shearbridge.config.seeds import seed_sequence

    derived = seed_sequence(seed, "survey_estimator", chunk, group, level).generate_state(1)[0]
    return dataclasses.replace(est, seed=int(derived))


def _true_positions(labels: dict[str, Any], size: int, scale: float) -> np.ndarray:
    """Each stamp's true galaxy position ``(N, 2)`` (x column, y row; 0-based pixels)."""
    centre = (size - 1) / 2.0
    return np.stack(
        [centre + np.asarray(labels[k], np.float64) / scale for k in ("dx_arcsec", "dy_arcsec")],
        axis=1,
    )


def run_groups(
    tier: SurveyConfig,
    seed: int,
    chunk: int,
    groups: Sequence[int],
    estimators: dict,
    scale: float,
    progress: Callable[[int], Any] | None = None,
) -> tuple[dict[str, dict[str, list[list[float]]]], list[list[int]], dict[str, float]]:
    """The sums of ``groups`` of chunk ``chunk``: ``({key: {noise tag: [sums per group]}},
    [histogram per group], seconds by stage)``. The histogram counts the galaxies' noise-free
    matched-filter norms ``||I||`` (one unsheared stamp each; S/N = ``||I|| / sigma``) in
    :data:`MF_NORM_EDGES`. ``estimators``: ``{(key, sigma): estimator}``; pure apart from the
    time."""
    from shearbridge.sim.survey import group_labels, group_noise, metacal_fix_noise, render_group
    from shearbridge.steps.population_methods import measure_grouped
    from shearbridge.stats.metacal_fourier import METACAL_STEP, metacal_by_psf
    from shearbridge.stats.survey import group_sums

    suffix = {key: st for key, _, st in survey_methods()}
    out: dict[str, dict[str, list[list[float]]]] = {}
    norms: list[list[int]] = []
    seconds: dict[str, float] = {"render": 0.0, "metacal_images": 0.0}
    for group in groups:
        t0 = time.perf_counter()
        labels = group_labels(tier, seed, chunk, group)
        clean, psfs = render_group(tier, labels)
        seconds["render"] += time.perf_counter() - t0
        first = clean[::SHEAR_TEST_STAMPS].reshape(len(clean) // SHEAR_TEST_STAMPS, -1)
        norms.append(np.histogram(np.linalg.norm(first, axis=1), MF_NORM_EDGES)[0].tolist())
        galaxy = np.asarray(labels["pair_id"])
        comp = galaxy % 2 + 1
        truth = _true_positions(labels, clean.shape[1], scale)
        for li, sigma in enumerate(tier.levels):
            x = clean + np.float32(sigma) * group_noise(
                tier, seed, chunk, group, li, labels, clean.shape[1:]
            )
            mc = None
            for (key, s), est in estimators.items():
                if s != sigma:
                    continue
                if group >= tier.groups_of(key):  # a slow method: its share of the groups
                    continue
                est = _for_group(est, seed, chunk, group, li)
                t0 = time.perf_counter()
                if suffix[key] == "survey":
                    e, flags, resp = measure_grouped(est, x, psfs, galaxy, scale, sigma, truth)
                else:
                    if mc is None:
                        t1 = time.perf_counter()
                        fix = np.float32(sigma) * metacal_fix_noise(
                            tier, seed, chunk, group, li, labels, clean.shape[1:]
                        )
                        mc = [
                            a.astype(np.float32)
                            for a in metacal_by_psf(
                                x, psfs, galaxy, comp, step=METACAL_STEP, fix_noise=fix
                            )
                        ]
                        seconds["metacal_images"] += time.perf_counter() - t1
                        t0 = time.perf_counter()
                    noshear, plus, minus, psf_r = mc
                    told = sigma * math.sqrt(2.0)  # the fix doubles the noise variance
                    e, flags, _ = measure_grouped(est, noshear, psf_r, galaxy, scale, told)
                    ep, fp, _ = measure_grouped(est, plus, psf_r, galaxy, scale, told)
                    em, fm, _ = measure_grouped(est, minus, psf_r, galaxy, scale, told)
                    idx = np.arange(len(x))
                    r = (ep[idx, comp - 1] - em[idx, comp - 1]) / (2.0 * METACAL_STEP)
                    resp = np.stack([r, r], axis=1)
                    flags = flags | fp | fm
                    flags = np.where(np.isfinite(ep).all(1) & np.isfinite(em).all(1), flags, 1)
                sums = group_sums(e, resp, flags, labels, tier.applied_shear)
                out.setdefault(key, {}).setdefault(noise_tag(sigma), []).append(
                    [float(v) for v in sums]
                )
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t0
        if progress is not None:
            progress(1)
    return out, norms, seconds

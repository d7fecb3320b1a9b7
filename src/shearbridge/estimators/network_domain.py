"""What a trained network can measure: the per-stamp flags of the network estimators.

A network returns a (g1, g2) for any array; these rules flag the stamps whose estimate is not a
measurement (bits of :mod:`shearbridge.estimators.base`). Each rule is noise-aware, so that a real
galaxy of the project's own sets is never flagged at any noise level (checked on every set of the
catalogue and on the population's families, 1e-5 to 2e-2 and metacalibration's sqrt(2) x 2e-2):

``nonpositive_flux``
    no pixel of the stamp is above zero (an empty or a negated noise-free stamp), or its weighted
    flux ``F_w = sum W x`` (``W = exp(-r^2 / 2 s^2)``, ``s`` = :data:`FLUX_WEIGHT_SIGMA_PX`, ``r``
    from the stamp's centre) or its summed flux ``F = sum x`` is below zero by more than
    :data:`NOISE_SIGMAS` times its noise (``sigma sqrt(sum W^2)``, ``sigma S``): a galaxy of
    positive flux is flagged with a probability below 1e-6, a negated one once it is detected at
    S/N > ~5.
``out_of_domain`` (a stamp not flagged ``nonpositive_flux``)
    *flux*: the summed flux lies above ``FLUX_FACTOR * flux_max`` or below ``flux_min /
    FLUX_FACTOR`` of the training set by more than :data:`NOISE_SIGMAS` times its noise
    (:data:`FLUX_FACTOR` = 10; the range is known for a network the project trained:
    :func:`training_flux_range`). *size*: a stamp detected at weighted S/N >= :data:`SIZE_MIN_SNR`
    whose Gaussian-moment sigma (weight ``W``, about the weighted centroid, the weight divided out
    as for a Gaussian) is below :data:`SIZE_FLOOR` times the PSF's moment sigma (a per-level
    network's training PSF, from its record; the PSF told to PSFNet, measured alike): a hot pixel,
    a cosmic ray, sharper than any galaxy seen through the PSF. There is no upper size rule: the
    training set's largest galaxies (sigma up to ~2.4") already fill a 53-pixel stamp, so a larger
    object cannot look larger inside one.
``unphysical`` / ``nonfinite``
    the network's ``|g| >= 1`` (to :data:`UNIT_TOL`: PSFNet pulls such an output radially onto
    the unit circle, where float32 leaves it within 1e-7 of 1) / a non-finite output
    (:func:`shear_flags`).

``sigma`` is the noise sigma told to ``measure`` (a study's calls tell it: for metacalibrated
stamps the doubled variance, which is what the fluxes' noise sums to); when it is not told
(``None``), the stamp's per-pixel one: the median absolute deviation of the differences of pixels
two apart over sqrt(2) (white noise assumed: correlated noise is underestimated, by ~0.6 in
metacal images).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from shearbridge.estimators.base import (
    FLAG_NONFINITE,
    FLAG_NONPOSITIVE_FLUX,
    FLAG_OUT_OF_DOMAIN,
    FLAG_UNPHYSICAL,
)

__all__ = [
    "FLUX_WEIGHT_SIGMA_PX",
    "NOISE_SIGMAS",
    "FLUX_FACTOR",
    "SIZE_MIN_SNR",
    "SIZE_FLOOR",
    "UNIT_TOL",
    "training_flux_range",
    "statistic_filters",
    "linear_statistics",
    "stamp_statistics",
    "moment_sigma_px",
    "domain_flags",
    "shear_flags",
]

#: Sigma (pixels) of the Gaussian weight of the weighted flux and the moment size (about a typical
#: galaxy of the training set seen through its PSF: matched-filter-like).
FLUX_WEIGHT_SIGMA_PX = 3.0
#: How many noise sigmas a flux must lie beyond a limit to be flagged.
NOISE_SIGMAS = 5.0
#: "Far outside" the training fluxes: above ``flux_max * FLUX_FACTOR`` or below
#: ``flux_min / FLUX_FACTOR``.
FLUX_FACTOR = 10.0
#: Weighted S/N from which the moment size is trusted (below it no size rule applies).
SIZE_MIN_SNR = 20.0
#: A stamp sharper than this fraction of the PSF's moment sigma is not a galaxy seen through it.
SIZE_FLOOR = 0.5
#: ``|g| >= 1 - UNIT_TOL`` is flagged unphysical (the float32 round-off of a clipped ``|g| = 1``).
UNIT_TOL = 1e-6
#: Stamps per vectorised chunk (bounds the memory of the statistics).
_CHUNK = 2048
_MAD_TO_SIGMA = 1.482602218505602


def training_flux_range(meta: Mapping[str, Any]) -> tuple[float, float] | None:
    """``(flux_min, flux_max)`` of the data a trained network saw: that of the dataset its
    experiment record (``meta["experiment"]``, written by training) names; ``None`` for a model
    without one (nothing is known of its fluxes, and no flux rule applies)."""
    from shearbridge.config import SimConfig

    exp = meta.get("experiment")
    if not isinstance(exp, Mapping):
        return None
    sim = SimConfig()  # every dataset of the catalogue shares these fluxes
    try:
        from shearbridge.config import get_profile
        from shearbridge.sim.catalogue import dataset_specs

        specs = dataset_specs(get_profile(exp["profile"]["name"]))
        sim = specs[exp.get("train_dataset", "train")].sim
    except (KeyError, TypeError, ValueError):  # a custom profile or dataset: the defaults
        pass
    return float(sim.flux_min), float(sim.flux_max)


@functools.lru_cache(maxsize=8)
def statistic_filters(size: int) -> np.ndarray:
    """The linear statistics of a stamp as columns (S^2, 5): 1, W, W x, W y, W (x^2 + y^2), with
    ``x, y`` from the stamp's centre and ``W`` the Gaussian weight: ``stamps (N, S^2) @ filters``
    (read-only: cached)."""
    c = (size - 1) / 2.0
    y, x = np.indices((size, size), dtype=np.float64) - c
    w = np.exp(-(x**2 + y**2) / (2.0 * FLUX_WEIGHT_SIGMA_PX**2))
    out = np.stack([np.ones_like(w), w, w * x, w * y, w * (x**2 + y**2)], axis=-1).reshape(-1, 5)
    out.flags.writeable = False
    return out


def linear_statistics(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(stamps @ statistic_filters (N, 5), largest pixel (N,))``, in chunks, float32 stamps in
    float32 (exact enough: the rules' margins are noise sigmas, ~1e-7 of the sums)."""
    n, s = len(stamps), stamps.shape[-1]
    m, peak = np.empty((n, 5)), np.empty(n)
    for lo in range(0, n, _CHUNK):
        x = np.asarray(stamps[lo : lo + _CHUNK])
        x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
        flat = x.reshape(len(x), -1)
        m[lo : lo + len(x)] = flat @ statistic_filters(s).astype(x.dtype)
        peak[lo : lo + len(x)] = flat.max(axis=1)
    return m, peak


def _stamp_noise(stamps: np.ndarray) -> np.ndarray:
    out = np.empty(len(stamps))
    for lo in range(0, len(stamps), _CHUNK):
        x = np.asarray(stamps[lo : lo + _CHUNK], np.float64)
        d = (x[:, :, 2:] - x[:, :, :-2]).reshape(len(x), -1)  # lag 2: less blind to correlations
        mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
        out[lo : lo + len(x)] = _MAD_TO_SIGMA * mad / np.sqrt(2.0)
    return out


def _deweighted_sigma(m: np.ndarray) -> np.ndarray:
    """Gaussian-moment sigma (pixels) from the linear statistics ``m`` (N, 5): the weighted
    variance about the weighted centroid, the weight divided out (exact for a Gaussian); 0 for a
    single pixel, inf where the weight dominates, NaN without positive weighted flux."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cx, cy = m[:, 2] / m[:, 1], m[:, 3] / m[:, 1]
        var = 0.5 * (m[:, 4] / m[:, 1] - cx**2 - cy**2)
        inv = 1.0 / np.maximum(var, 1e-300) - 1.0 / FLUX_WEIGHT_SIGMA_PX**2
        sigma = np.where(inv > 0, 1.0 / np.sqrt(np.maximum(inv, 1e-300)), np.inf)
        sigma = np.where(var <= 1e-6, 0.0, sigma)
    return np.where(m[:, 1] > 0, sigma, np.nan)


def stamp_statistics(
    stamps: np.ndarray,
    noise_sigma: float | None,
    linear: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Per stamp of ``stamps`` (N, S, S): ``flux`` (summed) and ``flux_err``, ``flux_w`` (weighted)
    and ``flux_w_err``, ``peak`` (largest pixel), ``noise`` (the sigma used) and ``size_px`` (the
    deweighted moment sigma, NaN below :data:`SIZE_MIN_SNR`). ``linear``: the stamps'
    :func:`linear_statistics` when already computed (PSFNet computes them on its device)."""
    s = stamps.shape[-1]
    m, peak = linear_statistics(stamps) if linear is None else linear
    noise = (
        _stamp_noise(stamps) if noise_sigma is None else np.full(len(stamps), float(noise_sigma))
    )
    w_norm = np.sqrt(np.sum(statistic_filters(s)[:, 1] ** 2))
    out = {
        "flux": m[:, 0],
        "flux_w": m[:, 1],
        "peak": peak,
        "noise": noise,
        "flux_err": noise * s,
        "flux_w_err": noise * w_norm,
    }
    with np.errstate(divide="ignore", invalid="ignore"):  # a noiseless stamp: S/N inf or NaN
        detected = out["flux_w"] / out["flux_w_err"] >= SIZE_MIN_SNR
    out["size_px"] = np.where(detected, _deweighted_sigma(m), np.nan)
    return out


def moment_sigma_px(images: np.ndarray) -> np.ndarray:
    """The deweighted Gaussian-moment sigma (pixels) of noise-free images (N, S, S), measured as
    :func:`stamp_statistics` measures a stamp (for a PSF image: the floor of the size rule)."""
    x = np.asarray(images, np.float64)
    return _deweighted_sigma(x.reshape(len(x), -1) @ statistic_filters(x.shape[-1]))


def domain_flags(
    stamps: np.ndarray,
    noise_sigma: float | None,
    flux_range: tuple[float, float] | None,
    psf_sigma_px: float | np.ndarray | None,
    linear: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``FLAG_NONPOSITIVE_FLUX`` and ``FLAG_OUT_OF_DOMAIN`` bits (N,) of ``stamps`` by the module's
    rules. ``flux_range``: the training's ``(flux_min, flux_max)`` (None: no flux-range rule);
    ``psf_sigma_px``: the PSF's moment sigma, one or one per stamp (None: no size rule);
    ``linear``: as :func:`stamp_statistics` takes it."""
    st = stamp_statistics(stamps, noise_sigma, linear)
    k = NOISE_SIGMAS
    flags = np.zeros(len(stamps), np.int64)
    nonpositive = (
        (st["peak"] <= 0)
        | (st["flux_w"] + k * st["flux_w_err"] < 0)
        | (st["flux"] + k * st["flux_err"] < 0)
    )
    flags[nonpositive] |= FLAG_NONPOSITIVE_FLUX
    outside = np.zeros(len(stamps), bool)
    if flux_range is not None:
        lo, hi = flux_range[0] / FLUX_FACTOR, flux_range[1] * FLUX_FACTOR
        outside |= (st["flux"] - k * st["flux_err"] > hi) | (st["flux"] + k * st["flux_err"] < lo)
    if psf_sigma_px is not None:
        floor = SIZE_FLOOR * np.asarray(psf_sigma_px, np.float64)
        outside |= np.nan_to_num(st["size_px"], nan=np.inf) < floor
    flags[outside & ~nonpositive] |= FLAG_OUT_OF_DOMAIN
    return flags


def shear_flags(g: np.ndarray) -> np.ndarray:
    """``FLAG_UNPHYSICAL`` where ``|g| >= 1 - UNIT_TOL``, ``FLAG_NONFINITE`` where g (N, 2) is not
    finite."""
    g = np.asarray(g, np.float64)
    finite = np.all(np.isfinite(g), axis=1)
    flags = np.where(finite, 0, FLAG_NONFINITE).astype(np.int64)
    with np.errstate(invalid="ignore"):
        flags[finite & (np.hypot(g[:, 0], g[:, 1]) >= 1.0 - UNIT_TOL)] |= FLAG_UNPHYSICAL
    return flags

"""Finite-difference shear response of any estimator, and the calibration it gives (pure).

For a sample of stamps, each galaxy is sheared by ``+delta`` and ``-delta`` along each
component metacal-style -- deconvolve the PSF, shear, reconvolve with the PSF dilated
by ``1 + 2 delta``, with the 90-degree-rotated noise image added when ``fix_noise``
(all of it :class:`shearbridge.stats.metacal.Metacal`'s image machinery, reused
unchanged; see its docstring for the dilation and the noise treatment) -- and the
estimator is run on the four sheared sets. The response matrix is

    R_ij = < g_i(+delta e_j) - g_i(-delta e_j) > / (2 delta),

averaged over the sample (delete-one-block jackknife error over contiguous blocks
of stamps), and a calibrated estimate is ``g_cal = R^-1 g`` (:func:`calibrate`). For
a network ``g`` is its prediction on the original stamps: the response is then
measured on images that differ from the originals by the 2 per cent dilated PSF and
(with ``fix_noise``) a sqrt(2) larger, correlated noise, so a network whose response
depends on the PSF size or the S/N keeps a residual bias after calibration; the
paired shear test measures that residual. The pipeline step is
:mod:`shearbridge.steps.response`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from shearbridge.stats.bias import jackknife
from shearbridge.stats.metacal import Metacal

__all__ = ["SHEARED_TYPES", "RESPONSE_DELTA", "ResponseResult", "sheared_images",
           "response_from_estimates", "finite_difference_response", "calibrate", "moments_response"]

#: Metacal image sets used for the response (component j, sign).
SHEARED_TYPES = ("1p", "1m", "2p", "2m")
#: Reduced-shear step of the finite-difference response (metacal's value).
RESPONSE_DELTA = 0.01


@dataclass
class ResponseResult:
    """``R`` (2, 2) with ``R[i, j] = d<g_i>/d g_j`` and its jackknife error ``R_err``.

    ``per_object`` (N, 2, 2): each stamp's finite-difference response.
    """

    R: np.ndarray
    R_err: np.ndarray
    per_object: np.ndarray
    delta: float
    extra: dict[str, Any] = field(default_factory=dict)


def sheared_images(stamps: np.ndarray, psf_image: np.ndarray, pixel_scale_arcsec: float,
                   noise_sigma: float, *, delta: float = RESPONSE_DELTA, fix_noise: bool = True,
                   seed: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Metacal image sets ``noshear, 1p, 1m, 2p, 2m`` (each (N, S, S)) and the
    reconvolution PSF image (S, S); ``delta`` is the reduced-shear step, ``noise_sigma``
    the pixel noise of ``stamps`` (image units; used only for the ``fix_noise`` image)."""
    mc = Metacal(estimator=None, step=delta, fix_noise=fix_noise, seed=seed)  # images only
    return mc.images(stamps, psf_image, pixel_scale_arcsec, noise_sigma)


def response_from_estimates(g: dict[str, np.ndarray], delta: float,
                            n_blocks: int = 50) -> ResponseResult:
    """Response matrix from estimates ``g[t]`` (N, 2) on the sets :data:`SHEARED_TYPES`.

    Objects with a non-finite estimate in any set are left out (counted in ``extra``).
    """
    missing = [t for t in SHEARED_TYPES if t not in g]
    if missing:
        raise ValueError(f"response needs estimates on the sheared sets {list(SHEARED_TYPES)}; "
                         f"missing {missing}")
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta!r}")
    arrs = {t: np.asarray(g[t], np.float64) for t in SHEARED_TYPES}
    n = arrs["1p"].shape[0]
    for t, a in arrs.items():
        if a.shape != (n, 2):
            raise ValueError(f"estimates on {t} have shape {a.shape}, expected ({n}, 2)")
    per = np.empty((n, 2, 2))
    per[:, :, 0] = (arrs["1p"] - arrs["1m"]) / (2 * delta)
    per[:, :, 1] = (arrs["2p"] - arrs["2m"]) / (2 * delta)
    keep = np.all(np.isfinite(per), axis=(1, 2))
    if keep.sum() < 2:
        raise ValueError(f"only {int(keep.sum())} objects have finite sheared estimates")
    good = per[keep]
    val, err = jackknife(lambda m: good[m].mean(axis=0).ravel(), int(keep.sum()), n_blocks)
    return ResponseResult(R=val.reshape(2, 2), R_err=err.reshape(2, 2), per_object=per, delta=delta,
                          extra={"n_used": int(keep.sum()), "n_dropped": int((~keep).sum())})


def finite_difference_response(predict: Callable[[np.ndarray], np.ndarray], stamps: np.ndarray,
                               psf_image: np.ndarray, pixel_scale_arcsec: float, noise_sigma: float,
                               *, delta: float = RESPONSE_DELTA, fix_noise: bool = True, seed: int | None = None,
                               n_blocks: int = 50,
                               sets: dict[str, np.ndarray] | None = None) -> ResponseResult:
    """Shear response of ``predict`` (stamps (N, S, S) -> reduced shear (N, 2)).

    Parameters
    ----------
    predict : callable
        The estimator; it sees the metacal images (dilated PSF), not the originals.
    stamps, psf_image
        (N, S, S) stamps and their (S, S) PSF image (with the pixel response).
    pixel_scale_arcsec, noise_sigma
        Pixel scale (arcsec/pixel) and pixel noise sigma of ``stamps`` (image units).
    delta : float
        Reduced-shear step (:data:`RESPONSE_DELTA`, as metacal).
    fix_noise, seed
        Metacal's correlated-noise fix and the seed of its noise images.
    sets : dict, optional
        The sheared images of ``stamps`` made with these settings (``1p, 1m, 2p, 2m``;
        :func:`response_images`), when already made; otherwise they are made here.
    """
    t0 = time.perf_counter()
    if sets is None:
        sets, _ = sheared_images(stamps, psf_image, pixel_scale_arcsec, noise_sigma, delta=delta,
                                 fix_noise=fix_noise, seed=seed)
    missing = [t for t in SHEARED_TYPES if t not in sets or len(sets[t]) != len(stamps)]
    if missing:
        raise ValueError(f"sheared image sets {missing} missing or not one per stamp ({len(stamps)})")
    t_img = time.perf_counter() - t0
    g = {t: np.asarray(predict(sets[t].astype(np.float32)), np.float64)[:, :2] for t in SHEARED_TYPES}
    res = response_from_estimates(g, delta, n_blocks)
    res.extra.update(images_wall_s=t_img, wall_s=time.perf_counter() - t0, fix_noise=fix_noise,
                     psf_dilation=1.0 + 2.0 * abs(delta), n=len(stamps))
    return res


def calibrate(g: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``R^-1 g`` for every row of ``g`` (N, 2); ``R`` (2, 2) must be invertible."""
    R = np.asarray(R, np.float64)
    if R.shape != (2, 2) or not np.all(np.isfinite(R)) or abs(np.linalg.det(R)) < 1e-12:
        raise ValueError(f"response matrix must be a finite invertible 2x2 matrix, got {R.tolist()}")
    return np.asarray(g, np.float64) @ np.linalg.inv(R).T


def moments_response(sets: dict[str, np.ndarray], sim: Any, n_blocks: int = 50) -> ResponseResult:
    """The response of the exact estimator on the same sheared images: a reference.

    PSF-deconvolved adaptive moments (:mod:`shearbridge.models.moments`, exact for Gaussian
    galaxies and PSFs) told the metacal reconvolution PSF: the pixelised PSF dilated by
    ``1 + 2 delta``. Its response is the shear-addition Jacobian of these galaxies, whose
    mean over a finite sample differs from the identity by the sample's shape fluctuation;
    a network's response on the same images is to be read against it.
    """
    import jax.numpy as jnp

    from shearbridge.models.moments import adaptive_moments

    # the moments add the pixel's 1/12 px^2 themselves; metacal dilates the pixelised PSF
    psf_px = sim.psf_sigma_arcsec / sim.pixel_scale_arcsec
    dilation = Metacal(estimator=None, step=RESPONSE_DELTA).dilation
    dilated = math.sqrt(dilation**2 * (psf_px**2 + 1 / 12) - 1 / 12)
    g = {}
    for t in SHEARED_TYPES:
        out = adaptive_moments(jnp.asarray(sets[t], jnp.float32), dilated, n_iter=8)
        g[t] = np.stack([np.asarray(out["g1"]), np.asarray(out["g2"])], axis=1).astype(np.float64)
    return response_from_estimates(g, RESPONSE_DELTA, n_blocks)

"""Metacalibration (Huff & Mandelbaum 2017; Sheldon & Huff 2017) on top of any estimator.

For each stamp: deconvolve the PSF (``galsim.InterpolatedImage`` of the stamp and
of the PSF image, ``galsim.Deconvolve``), shear by ``+/-step`` in each component,
reconvolve with the PSF dilated by ``1 + 2|step|`` (so the reconvolution kernel is
wider than the sheared original: the sheared deconvolved image has no power left
where the new kernel needs it), and draw with ``method="no_pixel"`` (both
interpolated images already contain the pixel). The five image sets ``noshear,
1p, 1m, 2p, 2m`` go through the same estimator with the reconvolution PSF image.

Response ``R_ij = (<g_i>_{jp} - <g_i>_{jm}) / (2 step)``; ensemble shear
``<g> = R^-1 <g>_noshear`` (on the objects unflagged in all five sets).

Correlated noise. Shearing the deconvolved noisy image shears (anisotropically
correlates) its noise, which biases the response (Sheldon & Huff 2017, Sec. 4).
The standard fix, ``fix_noise=True``: draw a white noise image of the same sigma,
rotate it by 90 degrees, put it through the identical metacal operations, rotate
it back and add it to each metacal image. The sheared-noise correlations of the
two noise fields then cancel to first order, at the price of twice the noise
variance (the estimator is told ``noise_sigma * sqrt(2)``). It needs a ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import galsim
import numpy as np

from shearbridge.estimators.base import EstimatorResult, ShapeEstimator, validate_inputs
from shearbridge.stats.bias import jackknife

__all__ = ["Metacal", "MetacalResult", "METACAL_TYPES"]

METACAL_TYPES = ("noshear", "1p", "1m", "2p", "2m")


@dataclass
class MetacalResult:
    """Per-type estimator results and the ensemble response and shear.

    ``R`` (2, 2) with ``R[i, j] = d<g_i>/d g_j``; ``shear`` = ``R^-1 <g>_noshear``
    with ``shear_err`` (delete-one-block jackknife over galaxies); ``mask`` marks
    the galaxies unflagged in all five sets.
    """

    results: dict[str, EstimatorResult]
    R: np.ndarray
    R_err: np.ndarray
    shear: np.ndarray
    shear_err: np.ndarray
    mask: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Metacal:
    """Metacalibration wrapper.

    Parameters
    ----------
    estimator : ShapeEstimator
        Any estimator (``measure(stamps, psf_image, pixel_scale, noise_sigma)``).
    step : float
        Shear step (reduced shear), default 0.01.
    psf_dilation : float or None
        Reconvolution-PSF dilation; ``None`` means ``1 + 2 |step|``.
    fix_noise : bool
        Add the 90-degree-rotated, metacal-processed noise image (needs ``seed``).
    seed : int or None
        Seed of the ``numpy.random.Generator`` for ``fix_noise`` noise images.
    n_blocks : int
        Jackknife blocks for ``R_err`` and ``shear_err``.
    """

    estimator: ShapeEstimator
    step: float = 0.01
    psf_dilation: float | None = None
    fix_noise: bool = False
    seed: int | None = None
    n_blocks: int = 50
    gsparams: galsim.GSParams | None = None

    def __post_init__(self) -> None:
        if not 0.0 < abs(self.step) < 0.2:
            raise ValueError(f"step must satisfy 0 < |step| < 0.2, got {self.step}")
        if self.fix_noise and self.seed is None:
            raise ValueError("fix_noise=True needs an explicit seed for the noise images")
        if self.psf_dilation is not None and not self.psf_dilation >= 1.0:
            raise ValueError(f"psf_dilation must be >= 1, got {self.psf_dilation}")

    @property
    def dilation(self) -> float:
        return 1.0 + 2.0 * abs(self.step) if self.psf_dilation is None else self.psf_dilation

    def _shears(self) -> dict[str, tuple[float, float]]:
        s = self.step
        return {
            "noshear": (0.0, 0.0),
            "1p": (s, 0.0),
            "1m": (-s, 0.0),
            "2p": (0.0, s),
            "2m": (0.0, -s),
        }

    def images(
        self,
        stamps: np.ndarray,
        psf_image: np.ndarray,
        pixel_scale_arcsec: float,
        noise_sigma: float,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The five metacal image sets, each (N, S, S), and the reconvolution PSF image (S, S)."""
        stamps, psf = validate_inputs(stamps, psf_image, pixel_scale_arcsec, noise_sigma)
        n, s, _ = stamps.shape
        gsp = self.gsparams
        psf_int = galsim.InterpolatedImage(
            galsim.Image(psf / psf.sum(), scale=pixel_scale_arcsec), gsparams=gsp
        )
        inv_psf = galsim.Deconvolve(psf_int, gsparams=gsp)
        new_psf = psf_int.dilate(self.dilation)
        draw = dict(nx=s, ny=s, scale=pixel_scale_arcsec, method="no_pixel", dtype=np.float64)
        new_psf_image = new_psf.drawImage(**draw).array
        shears = self._shears()
        out = {k: np.empty_like(stamps) for k in shears}
        rng = np.random.default_rng(self.seed) if self.fix_noise else None

        def process(arr: np.ndarray) -> dict[str, np.ndarray]:
            img = galsim.InterpolatedImage(
                galsim.Image(arr, scale=pixel_scale_arcsec), gsparams=gsp
            )
            deconv = galsim.Convolve(img, inv_psf, gsparams=gsp)
            return {
                k: galsim.Convolve(deconv.shear(g1=g1, g2=g2), new_psf, gsparams=gsp)
                .drawImage(**draw)
                .array
                for k, (g1, g2) in shears.items()
            }

        for i in range(n):
            res = process(np.ascontiguousarray(stamps[i]))
            if rng is not None:
                noise = rng.normal(0.0, noise_sigma, (s, s))
                nres = process(np.ascontiguousarray(np.rot90(noise, k=1)))
                for k in shears:
                    res[k] = res[k] + np.rot90(nres[k], k=-1)
            for k in shears:
                out[k][i] = res[k]
        return out, new_psf_image

    def measure(
        self,
        stamps: np.ndarray,
        psf_image: np.ndarray,
        pixel_scale_arcsec: float,
        noise_sigma: float,
    ) -> MetacalResult:
        """Run the estimator on the five image sets; response and ensemble shear."""
        sets, new_psf = self.images(stamps, psf_image, pixel_scale_arcsec, noise_sigma)
        sigma = noise_sigma * (np.sqrt(2.0) if self.fix_noise else 1.0)
        results = {
            k: self.estimator.measure(v, new_psf, pixel_scale_arcsec, sigma)
            for k, v in sets.items()
        }
        mask = np.ones(len(results["noshear"]), dtype=bool)
        for r in results.values():
            mask &= (r.flags == 0) & np.isfinite(r.g1) & np.isfinite(r.g2)
        if mask.sum() < 2:
            raise ValueError(f"metacal: only {int(mask.sum())} galaxies unflagged in all five sets")
        g = {k: r.g[mask] for k, r in results.items()}
        step = self.step

        def stat(sel: np.ndarray) -> np.ndarray:
            r_mat = np.empty((2, 2))
            for j, (p, m) in enumerate((("1p", "1m"), ("2p", "2m"))):
                r_mat[:, j] = (g[p][sel].mean(axis=0) - g[m][sel].mean(axis=0)) / (2 * step)
            shear = np.linalg.solve(r_mat, g["noshear"][sel].mean(axis=0))
            return np.concatenate([r_mat.ravel(), shear])

        val, err = jackknife(stat, int(mask.sum()), self.n_blocks)
        return MetacalResult(
            results=results,
            R=val[:4].reshape(2, 2),
            R_err=err[:4].reshape(2, 2),
            shear=val[4:],
            shear_err=err[4:],
            mask=mask,
            extra={
                "step": step,
                "dilation": self.dilation,
                "fix_noise": self.fix_noise,
                "psf_image": new_psf,
            },
        )

"""GalSim HSM moment-based shear estimators (REGAUSS, KSB) behind the common interface.

``galsim.hsm.EstimateShear(gal, psf, shear_est=..., strict=False)`` is called once
per stamp (Hirata & Seljak 2003; Mandelbaum et al. 2005; the KSB implementation of
Kaiser, Squires & Broadhurst 1995 in GalSim). The two methods return different
quantities and this wrapper converts both to the label convention:

* ``REGAUSS`` returns a PSF-corrected *distortion* ``e = (a^2 - b^2)/(a^2 + b^2)``
  (``corrected_e1/e2``); we convert to reduced shear ``g = (a - b)/(a + b)`` with
  ``|g| = tanh(atanh(|e|) / 2) = |e| / (1 + sqrt(1 - |e|^2))`` in the same
  direction;
* ``KSB`` returns a shear estimate ``g`` directly (``corrected_g1/g2``).

For an elliptical Gaussian galaxy convolved with a Gaussian PSF, REGAUSS should be
exact up to the pixel response and its own iteration tolerance; a small
multiplicative bias remains (GalSim's docstring example: about -0.4%), measured in
``tests/test_hsm.py``. KSB on the same objects has a larger, size-dependent bias:
its isotropic-weight moments of an elliptical profile are not the profile's
ellipticity, and it is corrected only to first order in the shear.

Failures (``correction_status != 0``, an error message, or a non-finite result)
give ``FLAG_HSM_FAILURE`` with NaN shears; they are never exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import galsim
import numpy as np

from shearbridge.estimators.base import (
    FLAG_HSM_FAILURE,
    FLAG_NONFINITE,
    FLAG_NONPOSITIVE_FLUX,
    EstimatorResult,
    validate_inputs,
)

__all__ = ["HSMEstimator", "distortion_to_shear", "shear_to_distortion", "HSM_METHODS"]

HSM_METHODS = ("REGAUSS", "KSB")


def distortion_to_shear(e1: np.ndarray, e2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distortion ``e`` (|e| < 1) -> reduced shear ``g``, same direction."""
    e1 = np.asarray(e1, dtype=np.float64)
    e2 = np.asarray(e2, dtype=np.float64)
    e = np.hypot(e1, e2)
    with np.errstate(invalid="ignore"):
        factor = 1.0 / (1.0 + np.sqrt(1.0 - e * e))
    return e1 * factor, e2 * factor


def shear_to_distortion(g1: np.ndarray, g2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reduced shear ``g`` (|g| < 1) -> distortion ``e = 2 g / (1 + |g|^2)``."""
    g1 = np.asarray(g1, dtype=np.float64)
    g2 = np.asarray(g2, dtype=np.float64)
    factor = 2.0 / (1.0 + g1 * g1 + g2 * g2)
    return g1 * factor, g2 * factor


@dataclass
class HSMEstimator:
    """GalSim HSM shear estimate per stamp.

    Parameters
    ----------
    method : {"REGAUSS", "KSB"}
        ``shear_est`` of ``galsim.hsm.EstimateShear``.
    guess_sig_gal_px, guess_sig_psf_px : float
        Starting adaptive-moment sigmas in *pixels* (GalSim defaults 5 and 3).
    hsmparams : galsim.hsm.HSMParams or None
        Passed through (e.g. a larger ``max_mom2_iter``).

    ``size`` is ``None`` (HSM has no intrinsic-size output); ``flux`` is the
    adaptive-moment amplitude ``moments_amp`` (the total flux for a Gaussian).
    ``extra`` holds ``moments_sigma_arcsec`` (adaptive-moment sigma of the
    PSF-convolved galaxy), ``resolution`` (``resolution_factor``), ``shape_err``
    (``corrected_shape_err`` from ``sky_var = noise_sigma^2``; for REGAUSS an error
    on ``e``, per component) and ``raw_e1``, ``raw_e2`` (REGAUSS distortion) or
    ``raw_g1``, ``raw_g2`` (KSB).
    """

    method: str = "REGAUSS"
    guess_sig_gal_px: float = 5.0
    guess_sig_psf_px: float = 3.0
    hsmparams: galsim.hsm.HSMParams | None = None
    name: str = ""
    #: Called with 1 after each stamp (a pipeline step's progress bar); no effect on results.
    progress: Callable[[int], Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        if self.method not in HSM_METHODS:
            raise ValueError(f"method must be one of {HSM_METHODS}, got {self.method!r}")
        if not self.name:
            self.name = f"hsm_{self.method.lower()}"

    def measure(
        self,
        stamps: np.ndarray,
        psf_image: np.ndarray,
        pixel_scale_arcsec: float,
        noise_sigma: float,
    ) -> EstimatorResult:
        """Run HSM on every stamp; see :class:`.base.ShapeEstimator` for the arguments."""
        stamps, psf = validate_inputs(stamps, psf_image, pixel_scale_arcsec, noise_sigma)
        n = stamps.shape[0]
        psf_im = galsim.Image(np.ascontiguousarray(psf), scale=pixel_scale_arcsec)
        out = {k: np.full(n, np.nan) for k in ("a", "b", "amp", "sigma", "res", "err")}
        flags = np.zeros(n, dtype=np.int64)
        for i in range(n):
            if self.progress is not None:
                self.progress(1)
            gal_im = galsim.Image(np.ascontiguousarray(stamps[i]), scale=pixel_scale_arcsec)
            res = galsim.hsm.EstimateShear(
                gal_im,
                psf_im,
                shear_est=self.method,
                strict=False,
                sky_var=float(noise_sigma) ** 2,
                guess_sig_gal=self.guess_sig_gal_px,
                guess_sig_PSF=self.guess_sig_psf_px,
                hsmparams=self.hsmparams,
            )
            if res.error_message or res.correction_status != 0:
                flags[i] |= FLAG_HSM_FAILURE
                continue
            if (
                not res.moments_amp > 0
            ):  # a negated galaxy: HSM measures its shape as if it were one
                flags[i] |= FLAG_NONPOSITIVE_FLUX
                continue
            if self.method == "REGAUSS":
                out["a"][i], out["b"][i] = res.corrected_e1, res.corrected_e2
            else:
                out["a"][i], out["b"][i] = res.corrected_g1, res.corrected_g2
            out["amp"][i] = res.moments_amp
            out["sigma"][i] = res.moments_sigma * pixel_scale_arcsec
            out["res"][i] = res.resolution_factor
            out["err"][i] = res.corrected_shape_err
        if self.method == "REGAUSS":
            with np.errstate(invalid="ignore"):
                big = np.hypot(out["a"], out["b"]) >= 1.0
            flags[big] |= FLAG_HSM_FAILURE
            g1, g2 = distortion_to_shear(out["a"], out["b"])
            raw = {"raw_e1": out["a"], "raw_e2": out["b"]}
        else:
            g1, g2 = out["a"].copy(), out["b"].copy()
            raw = {"raw_g1": out["a"], "raw_g2": out["b"]}
        bad_value = ~(np.isfinite(g1) & np.isfinite(g2))
        flags[bad_value & (flags == 0)] |= FLAG_NONFINITE
        g1[flags != 0] = np.nan
        g2[flags != 0] = np.nan
        return EstimatorResult(
            g1=g1,
            g2=g2,
            size=None,
            flux=out["amp"],
            flags=flags,
            extra={
                "moments_sigma_arcsec": out["sigma"],
                "resolution": out["res"],
                "shape_err": out["err"],
                "method": self.method,
                **raw,
            },
        )

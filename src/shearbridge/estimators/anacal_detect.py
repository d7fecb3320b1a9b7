"""AnaCal as a survey runs it: its own detection, selection and renoising (survey mode).

:class:`AnaCalDetectEstimator` calls AnaCal's C++ task (``anacal.task.Task``, PyPI ``anacal``
0.8.3, GPL-3.0; called, never copied): peaks are found on the PSF-deconvolved, Gaussian-smoothed
image, each peak gets a detection-and-selection weight ``wsel`` with its shear derivatives
``dwsel_dg{1,2}``, and the FPFS ellipticity ``fpfs_e{1,2}`` with ``fpfs_de{1,2}_dg{1,2}`` is
measured at the peak. With ``noise_rev`` a pure-noise image is passed as ``noise_array`` (AnaCal
adds it rotated by 90 degrees and doubles the variance), so detection, selection and shape are
corrected for noise bias together (Li & Mandelbaum 2023, 2025).

**Ensemble shear** (AnaCal's own tests, ``tests/task/test_detection.py`` of
github.com/mr-superonion/AnaCal, and xlens' shear scripts)::

    g_k = sum_j wsel_j e_kj / sum_j (wsel_j de_kj/dg_k + dwsel_j/dg_k e_kj)

over every detection ``j`` of the ensemble. ``measure`` returns, per stamp, the SUM over its
detections of the numerator (``g1, g2``) and of the denominator (``extra["response"]``, (N, 2)), so
that the ensemble shear of any set of stamps is ``sum g / sum response``
(:func:`shearbridge.stats.bias.paired_ensemble_bias`). A stamp without detection gives 0 and 0 (its
absence is what the selection response accounts for); ``extra["n_detected"]`` counts detections.
``g1, g2`` are therefore NOT shears and not ellipticities of one galaxy.

**Mosaic.** Stamps are laid in one row per call (``chunk`` stamps), each in its own AnaCal cell:
the cell's inner region (where it detects, and which owns the detection) is ``pitch`` px wide
around the stamp, and it reaches ``bound`` = 22 px further on each side (AnaCal refuses a cell
bound smaller than its background ring, 2"/0.141"/px + 1 = 22 px; pass ``bound`` for other pixel
scales). The pitch is the stamp size + 2*bound + 4, so no cell sees a neighbouring stamp, and each
detection is attributed to the stamp whose inner region holds it (AnaCal detects per inner region,
so nothing is detected twice). The pixels between stamps are zero (no noise): a detection there is
impossible except for peaks reaching out of the stamp; they are kept (they are the stamp's).

**Renoising.** The noise image of the ``j``-th stamp measured (counted across calls) is
``noise_sigma`` times child ``j // noise_share`` of ``numpy.random.SeedSequence(seed)``, negated at
odd positions within its group when ``antithetic`` (the pattern of
:class:`shearbridge.estimators.anacal.AnaCalEstimator`): the shear test's +-n stamps keep their
antithetic added noise.

**Settings.** ``sigma_arcsec = 0.40`` (AnaCal's test and xlens' default), ``snr_peak_min = 5``
(xlens' ``snr_min``), ``omega_f = 1`` x ``sd_det`` (``sd_det``: pixel noise std of AnaCal's
detection image for this PSF and, with renoising, doubled variance, from
``anacal.detector.coadd_smoothed_variance``), ``c0 = 0``, ``force_center = True``,
``num_epochs = 1`` (with ``force_center`` the FPFS quantities are measured at the peak pixel and
do not depend on AnaCal's Gaussian fit: 5 and 1 epochs give bit-identical ``g`` and response on
160 noisy stamps; 1 is ~10 % faster), and ``omega_v`` = 1.5e-4 in IMAGE units (``_OMEGA_V``).

``omega_v`` is the one that matters. AnaCal weights a peak by a product of smooth steps of width
``omega_v`` in ``v`` = (peak pixel - neighbour) of the detection image, and the derivative of that
step is what accounts, in ``dwsel_dg``, for the peak jumping to a neighbouring pixel when the
image is sheared. Rule: AnaCal's own detection test (``tests/task/test_detection.py``: 0.2"
pixels, exp hlr 0.3" of flux 398 (mag 23.5 at zero-point 30) x Moffat beta 2.5 FWHM 0.7",
``omega_v = 0.04``, ``omega_f = 0.8``) scaled to this study's galaxies, v scaling with the flux
per pixel: ``0.04 x (3 / 398) x (0.141 / 0.2)**2 = 1.5e-4`` (flux 3, the middle of the study's
1-5). It is NOT tied to the noise: ``v`` of a galaxy is about 1.5 % of its peak at 0.141" pixels
(the detection kernel is ~4 px wide), so a width in units of ``sd_det`` either throttles every
detection at low S/N (``1 x sd_det`` at sigma_n = 1e-2: 90 % of stamps undetected) or, when small
(``1e-3 x sd_det``, the previous default), makes the step's derivative a spike sampled by a few
galaxies: unbiased on average, but with sigma_m ~ 0.2 on 300 galaxies at S/N 200.

**What was wrong before, and what was measured** (population exp x Moffat, 0.141" pixels, 53 px
stamps, PSF FWHM 0.45-0.85", flux 1-5, paired +-g = 0.02 test with 4 orientations and antithetic
noise; /tmp scripts of the task that fixed this module):

* AnaCal's own test setup (galaxy centred ON a pixel) with 0.8.3: paired m = 3.5e-4 (the g^2 term),
  for ``force_center`` True or False and ``c0`` 0 or 1 alike. The same with the galaxy at uniform
  random SUB-PIXEL offsets (100 galaxies): m = -0.035; 256 galaxies: -0.008. The bias seen before
  (m = -0.024 at sigma_n = 1e-4 on 10 galaxies) is this: with random sub-pixel centres the
  peak-jump term of the response is sampled by only a few galaxies. It is not ``force_center``,
  ``c0``, the cell geometry or the PSF convention (the PSF is padded so that its centre pixel is
  npix // 2, as 0.8.3 requires; centred noise-free galaxies give m = 2.8e-4).
* Noise-free, 4 orientations on a regular n x n grid of sub-pixel offsets (the offset average as a
  quadrature): m = -0.027 (n = 4), +0.0037 (n = 8); 2 orientations (0, 90 deg): -0.003 (n = 6),
  +0.0055 (n = 8); with a near-hard peak cut (the previous default) -0.016 for n = 6 and 8 alike.
* Noisy, defaults, 1500 galaxies (two independent draws of 500 and 1000, 16 stamps each; paired
  estimator :func:`shearbridge.stats.bias.paired_ensemble_bias`, g = 0.02):

  ==========  ======  ===================  ===================  ===================  ==========
  sigma_n     S/N     m1                   m2                   c1                   undetected
  ==========  ======  ===================  ===================  ===================  ==========
  1e-3        ~200    +0.0066 +- 0.0044    -0.011 +- 0.011      +0.0014 +- 0.0008    12 %
  1e-2        ~20     +0.011 +- 0.036      +0.002 +- 0.040      -0.0029 +- 0.0025    13 %
  2e-2        ~10     +0.02 +- 0.11        -0.06 +- 0.08        +0.005 +- 0.005      30 %
  ==========  ======  ===================  ===================  ===================  ==========

  (c2: -0.0004 +- 0.0025, -0.0016 +- 0.0029, -0.0008 +- 0.0053.) The previous default
  (``omega_v = 1e-3 x sd_det``) at sigma_n = 1e-3 on 300 galaxies: m1 = -0.18 +- 0.17,
  m2 = -0.46 +- 0.21; ``omega_v = 3e-4`` (300 galaxies): m1 = -0.005 +- 0.007, 33 % undetected,
  m2 -0.002 +- 0.017, errors like those of 1.5e-4 (m1 +0.020 +- 0.011, m2 -0.014 +- 0.012, 14 %
  undetected, same galaxies).
  So at S/N ~ 200 the estimator is consistent with m = 0 (and with AnaCal
  forced at the true position, m = 3.6e-4 +- 0.25e-4 on 2000 galaxies) but only to ~1 %: the
  selection weights of the +g and -g images differ (peak jumps, the v-steps), so the paired design
  does not cancel shape noise in the selection term, and sigma_m is ~70-150 x that of AnaCal
  forced at the true position in the same design (scaled to 1500 galaxies). It cannot test
  percent-level calibration at S/N 20 or below with thousands of galaxies.
* Speed: ~50 stamps/s on one core (2-core machine shared with one other job; 146 x 146 px cell
  per stamp), ~88 % of stamps detected at S/N 200 and 20, ~70 % at S/N 10.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shearbridge.estimators.anacal import (
    ANACAL_VERSION,
    AnaCalUnavailable,
    check_psf_centred,
)
from shearbridge.estimators.base import EstimatorInputError, EstimatorResult, validate_inputs
from shearbridge.estimators.fpfs_inputs import padded_psf, renoise_images

__all__ = ["AnaCalDetectEstimator", "import_anacal_task"]

#: AnaCal's minimum cell bound at 0.141"/px (its background ring's reach, px).
_BOUND = 22

#: Peak-cut softening in IMAGE units (module docstring): AnaCal's test value 0.04 for a
#: flux-398 galaxy on 0.2" pixels, scaled to this study's flux (3) and 0.141" pixel area.
_OMEGA_V = 0.04 * (3.0 / 398.1) * (0.141 / 0.2) ** 2


def import_anacal_task() -> Any:
    """Import ``anacal`` (for ``anacal.task``, ``anacal.geometry``, ``anacal.detector``)."""
    try:
        return importlib.import_module("anacal")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AnaCalUnavailable(
            f"anacal is not installed: pip install anacal=={ANACAL_VERSION}"
        ) from exc


@dataclass
class AnaCalDetectEstimator:
    """AnaCal's detection + selection + FPFS shape, summed per stamp (module docstring).

    Parameters
    ----------
    sigma_arcsec : float
        AnaCal's measurement kernel (detection uses ``sqrt(2)`` times it).
    snr_peak_min : float
        Peak S/N threshold of the detection image.
    omega_f : float
        Soft width of the flux cut, in units of the detection image's pixel noise ``sd_det``.
    omega_v : float
        Soft width of the peak cut, in IMAGE units (detection image, same units as the stamps);
        the default is AnaCal's test value scaled to this study's flux and pixel (module docstring).
    c0 : float
        ``fpfs_c0`` (FPFS denominator weight, in AnaCal's m0 units at zero-point 31.4).
    force_center : bool
        Keep AnaCal's model centre at the detected peak (xlens' default) or let it move.
    num_epochs : int
        Iterations of AnaCal's Gaussian fit.
    noise_rev, seed, noise_share, antithetic :
        Renoising (see :class:`shearbridge.estimators.anacal.AnaCalEstimator`).
    npix : int
        AnaCal's measurement stamp (``stamp_size``) and PSF array size (even, >= stamp size).
    bound : int
        Cell bound, px (>= AnaCal's background-ring reach, 22 px at 0.141"/px).
    chunk : int
        Stamps per AnaCal call; no effect on results.
    """

    sigma_arcsec: float = 0.40
    snr_peak_min: float = 5.0
    omega_f: float = 1.0
    omega_v: float = _OMEGA_V
    c0: float = 0.0
    force_center: bool = True
    num_epochs: int = 1
    noise_rev: bool = True
    seed: int = 0
    noise_share: int = 1
    antithetic: bool = False
    npix: int = 64
    bound: int = _BOUND
    chunk: int = 64
    name: str = ""
    progress: Callable[[int], Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in ("sigma_arcsec", "snr_peak_min", "omega_f", "omega_v"):
            v = getattr(self, key)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{key} must be a finite number > 0, got {v!r}")
        if not (np.isfinite(self.c0) and self.c0 >= 0):
            raise ValueError(f"c0 must be a finite number >= 0, got {self.c0!r}")
        for key, lo in (
            ("npix", 8),
            ("bound", 0),
            ("chunk", 1),
            ("num_epochs", 1),
            ("noise_share", 1),
        ):
            v = getattr(self, key)
            if isinstance(v, bool) or int(v) != v or v < lo:
                raise ValueError(f"{key} must be an integer >= {lo}, got {v!r}")
            setattr(self, key, int(v))
        if self.npix % 2:
            raise ValueError(f"npix must be even, got {self.npix}")
        if not isinstance(self.antithetic, bool):
            raise ValueError(f"antithetic must be True or False, got {self.antithetic!r}")
        if not self.name:
            self.name = "anacal_detect"
        self._ac = import_anacal_task()
        self._n_measured = 0

    # -- helpers -----------------------------------------------------------------------------
    def _psf_array(self, psf: np.ndarray) -> np.ndarray:
        """The unit-sum PSF on ``npix x npix`` (:func:`padded_psf`)."""
        return padded_psf(psf, self.npix)

    def _noise_images(self, n: int, size: int, noise_sigma: float) -> np.ndarray:
        """Renoising images of the next ``n`` stamps (:func:`renoise_images`)."""
        return renoise_images(
            self._n_measured,
            n,
            size,
            noise_sigma,
            self.seed,
            self.noise_share,
            self.antithetic,
            np.float32,
        )

    def detection_noise(self, psf64: np.ndarray, scale: float, noise_sigma: float) -> float:
        """Pixel noise std of AnaCal's detection image (variance doubled with renoising)."""
        var = float(noise_sigma) ** 2 * (2.0 if self.noise_rev else 1.0)
        v = self._ac.detector.coadd_smoothed_variance(
            scale, self.sigma_arcsec * np.sqrt(2.0), psf64, [var], [1.0]
        )
        return float(np.sqrt(v))

    def _task(self, scale: float, sd: float) -> Any:
        return self._ac.task.Task(
            scale=scale,
            sigma_arcsec=float(self.sigma_arcsec),
            snr_peak_min=float(self.snr_peak_min),
            omega_f=float(self.omega_f) * sd,
            omega_v=float(self.omega_v),
            stamp_size=self.npix,
            num_epochs=self.num_epochs,
            force_center=bool(self.force_center),
            fpfs_c0=float(self.c0),
        )

    def _run_chunk(
        self,
        task: Any,
        stamps: np.ndarray,
        noise: np.ndarray | None,
        psf64: np.ndarray,
        scale: float,
        noise_sigma: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One AnaCal call over a row of cells; returns the catalogue and each row's stamp."""
        n, size, _ = stamps.shape
        b = self.bound
        pitch = size + 2 * b + 4
        pitch += pitch % 2
        height = pitch + 2 * b
        mosaic = np.zeros((height, pitch * n + 2 * b), dtype=np.float32)
        nmosaic = None if noise is None else np.zeros_like(mosaic)
        off = b + (pitch - size) // 2
        cells = []
        for i in range(n):
            x0 = i * pitch + off
            mosaic[off : off + size, x0 : x0 + size] = stamps[i]
            if nmosaic is not None:
                nmosaic[off : off + size, x0 : x0 + size] = noise[i]
            cells.append(
                self._ac.geometry.cell(
                    i * pitch + b + pitch // 2,
                    b + pitch // 2,
                    i * pitch,
                    0,
                    i * pitch + pitch + 2 * b,
                    height,
                    i * pitch + b,
                    b,
                    i * pitch + b + pitch,
                    b + pitch,
                    scale,
                    i,
                )
            )
        cat = task.process_image(mosaic, psf64, float(noise_sigma) ** 2, cells, noise_array=nmosaic)
        owner = self._ac.task.assign_cell_ids(cat, cells) if len(cat) else np.zeros(0, int)
        return cat, np.asarray(owner, dtype=np.int64)

    # -- interface ---------------------------------------------------------------------------
    def measure(
        self,
        stamps: np.ndarray,
        psf_image: np.ndarray,
        pixel_scale_arcsec: float,
        noise_sigma: float,
    ) -> EstimatorResult:
        """Per stamp: sums over its detections of ``wsel e`` (``g1, g2``) and of
        ``wsel de/dg + dwsel/dg e`` (``extra["response"]``); module docstring."""
        stamps, psf = validate_inputs(stamps, psf_image, pixel_scale_arcsec, noise_sigma)
        n, size, _ = stamps.shape
        check_psf_centred(psf)
        if size > self.npix:
            raise EstimatorInputError(
                f"stamps of {size} px do not fit AnaCal's npix = {self.npix}: raise npix"
            )
        if not float(noise_sigma) > 0:
            raise EstimatorInputError(
                f"noise_sigma must be > 0 (AnaCal's detection thresholds scale with it), "
                f"got {noise_sigma!r}"
            )
        scale = float(pixel_scale_arcsec)
        psf64 = self._psf_array(psf)
        sd = self.detection_noise(psf64, scale, float(noise_sigma))
        task = self._task(scale, sd)
        noise = self._noise_images(n, size, float(noise_sigma)) if self.noise_rev else None
        self._n_measured += n
        num = np.zeros((n, 2))
        den = np.zeros((n, 2))
        ndet = np.zeros(n, dtype=np.int64)
        wsum = np.zeros(n)
        for lo in range(0, n, self.chunk):
            hi = min(n, lo + self.chunk)
            cat, owner = self._run_chunk(
                task,
                np.ascontiguousarray(stamps[lo:hi], dtype=np.float32),
                None if noise is None else noise[lo:hi],
                psf64,
                scale,
                float(noise_sigma),
            )
            if len(cat):
                w = cat["wsel"]
                for k in (1, 2):
                    e = cat[f"fpfs_e{k}"]
                    np.add.at(num[:, k - 1], lo + owner, w * e)
                    np.add.at(
                        den[:, k - 1],
                        lo + owner,
                        w * cat[f"fpfs_de{k}_dg{k}"] + cat[f"dwsel_dg{k}"] * e,
                    )
                np.add.at(ndet, lo + owner, 1)
                np.add.at(wsum, lo + owner, w)
            if self.progress is not None:
                self.progress(hi - lo)
        flags = np.zeros(n, dtype=np.int64)
        bad = ~(np.all(np.isfinite(num), axis=1) & np.all(np.isfinite(den), axis=1))
        if np.any(bad):  # pragma: no cover - AnaCal gives finite rows
            from shearbridge.estimators.base import FLAG_NONFINITE

            flags[bad] |= FLAG_NONFINITE
            num[bad] = np.nan
            den[bad] = np.nan
        extra = {
            "response": den,
            "n_detected": ndet,
            "wsel_sum": wsum,
            "sd_det": sd,
            "sigma_arcsec": float(self.sigma_arcsec),
            "noise_rev": bool(self.noise_rev),
            "anacal_version": str(getattr(self._ac, "__version__", "unknown")),
        }
        return EstimatorResult(
            g1=num[:, 0].copy(),
            g2=num[:, 1].copy(),
            size=None,
            flux=None,
            flags=flags,
            extra=extra,
        )

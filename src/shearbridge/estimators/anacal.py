"""AnaCal / FPFS (Li et al. 2022; Li & Mandelbaum 2023) behind the common interface.

AnaCal (PyPI ``anacal``, GPL-3.0) measures Fourier power function shapelets of each
galaxy after deconvolving the PSF in Fourier space with a Gaussian kernel, and gives an
ellipticity ``e`` with its *analytic* shear response ``de/dg``. This module calls
``anacal.fpfs.process_image`` and copies none of AnaCal's code; the package is imported
when an estimator is made, and its absence raises :class:`AnaCalUnavailable`.

**Not a shear.** ``EstimatorResult.g1, g2`` hold the FPFS ellipticities ``e1, e2``
(``fpfs1_e1, fpfs1_e2``), a different, non-linear ellipticity (about half of ``g`` here),
signs in the label convention; ``extra["response"]`` (N, 2) holds ``de1/dg1, de2/dg2``.
The shear of an ensemble is ``sum(e) / sum(R)`` per component over the same objects
(:func:`ensemble_shear`), never a mean of per-galaxy ratios (per-galaxy ``R`` is noisy
and can be negative at low S/N); per-galaxy ``e`` is never compared with ``g``.

**Configuration** (chosen on a tuning set, not per galaxy). ``sigma_arcsec`` is the
kernel scale (AnaCal's ``sigma_shapelets1``): the PSF is divided out in Fourier space,
so the kernel must fall faster than the PSF's transform, i.e. be well above the PSF sigma
(0.25" here); near it the deconvolution amplifies high-k noise, far above it the kernel
smooths away small galaxies' shapes. ``c0`` is the weight in the denominator,
``e ~ M22 / (M00 + c0)``: larger values down-weight faint galaxies (less noise and noise
bias, smaller response). With ``c0_units="m00"`` it is in AnaCal's ``m00`` units (passed
with ``mag_zero = 31.4``, AnaCal's reference zero-point, so that it is used as given;
AnaCal's default 30 is meant for nJy images and swamps these m00 ~ 0.3-2); with
``c0_units="sigma"`` it is a multiple of ``sigma_m00``, the standard deviation of ``m00``
from one image's pixel noise (AnaCal's covariance for ``noise_sigma`` and the PSF), so one
number serves every noise level. Defaults (0.52" ~ 2.1 PSF sigma, ``c0 = 32 sigma_m00``):
the choice of the pipeline's scan on training galaxies at the survey noise level
(:mod:`shearbridge.steps.tune_anacal`, rule ``tune_anacal``; the paper's numbers refuse to
build when the defaults and the paper profile's choice differ).

**Noise bias.** ``noise_rev=True`` (what a survey runs): AnaCal's renoising. A pure-noise
image of ``noise_sigma`` over the stamp is passed as ``noise_array``; AnaCal measures it
rotated by 90 degrees and adds its modes, cancelling the first-order noise bias of ``e``
and ``R`` at the price of twice the mode noise variance. The image of the ``j``-th stamp
measured (counted across calls) comes from child ``j // noise_share`` of
``numpy.random.SeedSequence(seed)``: reproducible given ``seed`` and the sequence of
calls, and independent of how stamps are batched. ``noise_rev=False``: nothing added;
the shear carries the noise bias of a ratio (small at high S/N).

**Positions.** AnaCal measures at given positions, which must be the centroid (at the stamp
centre offset galaxies give m ~ -7 %). ``detection="centroid"`` (default) finds it on the image
(:func:`weighted_centroid`), whose noise renoising does not correct (m of a few per cent at the
lowest S/N); ``"centre"`` is a diagnostic; ``"truth"``, a control no survey can run, is given the
true positions (``measure(..., positions=)``): what the position's noise costs.

**Stamps and PSF.** Each stamp sits in a mosaic cell ``npix + S`` px wide, so one AnaCal
call measures a chunk while each ``npix`` (even, >= S) window sees one zero-padded stamp
(the numbers of a call per stamp). The PSF (``S x S``, centred on ``S // 2``) is
normalised and zero-padded to ``npix x npix`` with its centre on ``npix // 2``.

``extra``: ``response``, ``x``, ``y`` (0-based pixels: x column, y row), ``m00``, ``m00_err``,
``s2n`` (AnaCal's), ``c0_m00`` (the c0 used) and the configuration. Flags:
``FLAG_NONPOSITIVE_FLUX`` (no positive flux), ``FLAG_FIT_FAILURE`` (centroid left the stamp),
``FLAG_NOT_CONVERGED`` (centroid did not settle), ``FLAG_NONFINITE``; flagged rows hold NaN ``e``
and ``R``. A negative response is kept (cutting on it would bias the ensemble).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shearbridge.errors import OptionalDependencyError
from shearbridge.estimators.base import (  # ensemble_shear: re-exported, AnaCal's ensemble
    FLAG_NONFINITE,
    ensemble_shear,
    EstimatorInputError,
    EstimatorResult,
    validate_inputs,
)
from shearbridge.estimators.fpfs_inputs import (
    check_psf_centred,
    given_positions,
    padded_psf,
    renoise_images,
    weighted_centroid,
)

__all__ = [
    "AnaCalEstimator",
    "AnaCalUnavailable",
    "anacal_available",
    "check_psf_centred",
    "ensemble_shear",
    "import_anacal",
    "weighted_centroid",
    "ANACAL_VERSION",
    "MAG_ZERO",
]

#: The version this wrapper was written and tested against (requirements.lock pins it).
ANACAL_VERSION = "0.8.3"
#: AnaCal's reference zero-point (``anacal._anacal.task.THRESHOLD_REF_MAG_ZERO``): with it,
#: ``FpfsConfig.c0`` is used as given, in m00 units.
MAG_ZERO = 31.4

_C0_UNITS = ("sigma", "m00")
_DETECTIONS = ("centroid", "centre", "truth")


class AnaCalUnavailable(OptionalDependencyError):
    """The ``anacal`` package is not installed."""


def import_anacal() -> Any:
    """Import ``anacal.fpfs``, or raise :class:`AnaCalUnavailable` saying how to install it."""
    try:
        return importlib.import_module("anacal.fpfs")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AnaCalUnavailable(
            f"anacal is not installed: pip install anacal=={ANACAL_VERSION} "
            "(a cp311 manylinux wheel; GPL-3.0; needs only numpy)"
        ) from exc


def anacal_available() -> bool:
    """True where ``anacal`` imports (the registry's ``available=`` check)."""
    try:
        import_anacal()
    except AnaCalUnavailable:
        return False
    return True


@dataclass
class AnaCalEstimator:
    """AnaCal FPFS ellipticity and analytic shear response per stamp.

    Parameters
    ----------
    sigma_arcsec : float
        Gaussian kernel scale of the shapelets (AnaCal's ``sigma_shapelets1``), arcsec;
        must be well above the PSF sigma (see the module docstring). Tuned, not per galaxy.
    c0 : float
        Denominator weight of the ellipticity, in the units of ``c0_units``. Tuned.
    c0_units : {"sigma", "m00"}
        ``"sigma"``: ``c0`` times the standard deviation of ``m00`` from one image's pixel
        noise; ``"m00"``: ``c0`` in m00 units as given.
    noise_rev : bool
        Renoise (AnaCal's noise-bias correction with an added pure-noise image, drawn
        from ``numpy.random.SeedSequence(seed)``) or not.
    npix : int
        Even cut-out size AnaCal transforms (>= the stamp size).
    seed : int
        Seed of the renoising images (unused when ``noise_rev`` is False).
    noise_share : int
        Consecutive stamps (counted across calls) sharing one renoising image: 1, or 4 for
        the package's shear-test sets, whose four stamps per galaxy and orientation share
        their pixel noise; sharing the added noise too keeps noise cancelling in
        ``+g - (-g)``, so the renoised ``m`` is as precise as the plain one (expectations
        are unchanged).
    antithetic : bool
        Within a share group, stamps at odd positions get the negated renoising image (the
        shear test's ``-n`` stamps hold the negated pixel noise of their ``+n`` neighbour;
        negating the added noise with it keeps the pair antithetic). Expectations unchanged.
    detection : {"centroid", "centre", "truth"}
        Measure at the image centroid (:func:`weighted_centroid`), at the stamp centre
        (a diagnostic: biased for offset galaxies), or at the positions given to ``measure``
        (a control: the true positions).
    chunk : int
        Stamps per AnaCal call (one mosaic); no effect on results.

    ``measure`` returns the FPFS ``e`` as ``g1, g2`` (**not shears**) and the response in
    ``extra["response"]``; see the module docstring.
    """

    sigma_arcsec: float = 0.52
    c0: float = 32.0
    c0_units: str = "sigma"
    noise_rev: bool = True
    npix: int = 64
    seed: int = 0
    noise_share: int = 1
    antithetic: bool = False
    detection: str = "centroid"
    chunk: int = 256
    name: str = ""
    #: Called with the number of stamps just measured (a pipeline step's progress bar);
    #: no effect on results.
    progress: Callable[[int], Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.sigma_arcsec) and 0 < self.sigma_arcsec < 3.0):
            raise ValueError(f"sigma_arcsec must lie in (0, 3) arcsec, got {self.sigma_arcsec!r}")
        if not (np.isfinite(self.c0) and self.c0 >= 0):
            raise ValueError(f"c0 must be a finite number >= 0, got {self.c0!r}")
        if self.c0_units not in _C0_UNITS:
            raise ValueError(f"c0_units must be one of {_C0_UNITS}, got {self.c0_units!r}")
        if self.detection not in _DETECTIONS:
            raise ValueError(f"detection must be one of {_DETECTIONS}, got {self.detection!r}")
        if (
            isinstance(self.npix, bool)
            or int(self.npix) != self.npix
            or self.npix < 8
            or self.npix % 2
        ):
            raise ValueError(f"npix must be an even integer >= 8, got {self.npix!r}")
        if int(self.chunk) < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk!r}")
        self.npix, self.chunk = int(self.npix), int(self.chunk)
        if not self.name:
            self.name = "anacal_fpfs"
        if (
            isinstance(self.noise_share, bool)
            or int(self.noise_share) != self.noise_share
            or self.noise_share < 1
        ):
            raise ValueError(f"noise_share must be a positive integer, got {self.noise_share!r}")
        self.noise_share = int(self.noise_share)
        if not isinstance(self.antithetic, bool):
            raise ValueError(f"antithetic must be True or False, got {self.antithetic!r}")
        self._fpfs = import_anacal()
        #: Stamps measured so far (the global index of the next stamp's renoising image).
        self._n_measured = 0

    # -- helpers -----------------------------------------------------------------------------
    def _psf_array(self, psf: np.ndarray) -> np.ndarray:
        """The unit-sum PSF on ``npix x npix`` (:func:`padded_psf`)."""
        return padded_psf(psf, self.npix)

    def sigma_m00(
        self, psf_array: np.ndarray, pixel_scale_arcsec: float, noise_sigma: float
    ) -> float:
        """Standard deviation of ``m00`` due to one image's white pixel noise (no renoising)."""
        task = self._fpfs.FpfsTask(
            npix=self.npix,
            pixel_scale=float(pixel_scale_arcsec),
            sigma_shapelets=float(self.sigma_arcsec),
            psf_array=psf_array,
        )
        cov = task.calculate_covariance(variance=float(noise_sigma) ** 2, psf_pow=task.psf_pow)
        return float(np.sqrt(cov[task.di["m00"], task.di["m00"]]))

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
            np.float64,
        )

    def _run_chunk(
        self,
        cfg: Any,
        stamps: np.ndarray,
        noise: np.ndarray | None,
        x: np.ndarray,
        y: np.ndarray,
        psf64: np.ndarray,
        scale: float,
        noise_sigma: float,
    ) -> np.ndarray:
        """One AnaCal call over a mosaic of stamps (cells ``npix + S`` wide, one row)."""
        n, size, _ = stamps.shape
        half = self.npix // 2
        cell = self.npix + size
        mosaic = np.zeros((cell, cell * n), dtype=np.float32)
        nmosaic = None if noise is None else np.zeros_like(mosaic)
        for i in range(n):
            mosaic[half : half + size, i * cell + half : i * cell + half + size] = stamps[i]
            if nmosaic is not None:
                nmosaic[half : half + size, i * cell + half : i * cell + half + size] = noise[i]
        det = np.zeros(n, dtype=[("y", "f8"), ("x", "f8")])
        det["y"] = y + half
        det["x"] = x + half + cell * np.arange(n)
        return self._fpfs.process_image(
            fpfs_config=cfg,
            pixel_scale=scale,
            noise_variance=float(noise_sigma) ** 2,
            mag_zero=MAG_ZERO,
            gal_array=mosaic,
            psf_array=psf64,
            detection=det,
            noise_array=nmosaic,
        )

    # -- interface ---------------------------------------------------------------------------
    def measure(
        self,
        stamps: np.ndarray,
        psf_image: np.ndarray,
        pixel_scale_arcsec: float,
        noise_sigma: float,
        positions: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> EstimatorResult:
        """FPFS ``e`` and ``de/dg`` of every stamp; see :class:`.base.ShapeEstimator` for the
        arguments and the module docstring for what is returned. ``positions`` (``x, y``, 0-based
        pixels, one each per stamp) only with ``detection="truth"``, which needs them."""
        stamps, psf = validate_inputs(stamps, psf_image, pixel_scale_arcsec, noise_sigma)
        n, size, _ = stamps.shape
        check_psf_centred(psf)
        if size > self.npix:
            raise EstimatorInputError(
                f"stamps of {size} px do not fit AnaCal's npix = {self.npix}: raise npix"
            )
        scale = float(pixel_scale_arcsec)
        psf64 = self._psf_array(psf)
        c0 = float(self.c0) * (
            self.sigma_m00(psf64, scale, noise_sigma) if self.c0_units == "sigma" else 1.0
        )
        cfg = self._fpfs.FpfsConfig(
            npix=self.npix, sigma_shapelets1=float(self.sigma_arcsec), c0=c0
        )
        if self.detection == "truth" or positions is not None:
            x, y, flags = given_positions(positions, n, self.detection)
        elif self.detection == "centroid":
            x, y, flags = weighted_centroid(stamps)
        else:
            x = y = np.full(n, (size - 1) / 2.0)
            flags = np.zeros(n, dtype=np.int64)
        noise = self._noise_images(n, size, float(noise_sigma)) if self.noise_rev else None
        self._n_measured += n
        cols = ("e1", "e2", "r1", "r2", "m00", "m00_err", "s2n")
        out = {k: np.full(n, np.nan) for k in cols}
        for lo in range(0, n, self.chunk):
            hi = min(n, lo + self.chunk)
            cat = self._run_chunk(
                cfg,
                stamps[lo:hi],
                None if noise is None else noise[lo:hi],
                x[lo:hi],
                y[lo:hi],
                psf64,
                scale,
                float(noise_sigma),
            )
            for k, col in zip(
                cols,
                (
                    "fpfs1_e1",
                    "fpfs1_e2",
                    "fpfs1_de1_dg1",
                    "fpfs1_de2_dg2",
                    "fpfs1_m00",
                    "fpfs1_m00_err",
                    "s2n_fpfs1",
                ),
            ):
                out[k][lo:hi] = cat[col]
            if self.progress is not None:
                self.progress(hi - lo)
        e1, e2, r1, r2 = out["e1"], out["e2"], out["r1"], out["r2"]
        finite = np.isfinite(e1) & np.isfinite(e2) & np.isfinite(r1) & np.isfinite(r2)
        flags[~finite & (flags == 0)] |= FLAG_NONFINITE
        bad = flags != 0
        for arr in (e1, e2, r1, r2):
            arr[bad] = np.nan
        extra = {
            "response": np.stack([r1, r2], axis=1),
            "x": x,
            "y": y,
            "m00": out["m00"],
            "m00_err": out["m00_err"],
            "s2n": out["s2n"],
            "c0_m00": c0,
            "sigma_arcsec": float(self.sigma_arcsec),
            "noise_rev": bool(self.noise_rev),
            "detection": self.detection,
            "anacal_version": _anacal_version(),
        }
        return EstimatorResult(g1=e1, g2=e2, size=None, flux=None, flags=flags, extra=extra)


def _anacal_version() -> str:
    return str(getattr(importlib.import_module("anacal"), "__version__", "unknown"))

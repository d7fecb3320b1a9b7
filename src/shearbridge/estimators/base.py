"""The common interface of every per-galaxy shape estimator.

Every estimator (the JAX maximum-likelihood fit, ngmix, GalSim HSM, ...) takes a
batch of postage stamps and one PSF image and returns an :class:`EstimatorResult`:
reduced shears ``g`` in the label convention of the simulator, i.e. the ``g1, g2``
passed to ``galsim.GSObject.shear(g1=..., g2=...)`` (``+g1`` stretches along the x
axis of the image array's column direction, ``+g2`` along the diagonal x = y).

Misuse (NaN pixels, a wrong array shape, a non-positive noise level, a PSF image
whose shape does not match the stamps) raises :class:`EstimatorInputError`, a
``ValueError``. A fit that fails on one galaxy is *not* an exception: its row gets
a non-zero ``flags`` value (bits below) and NaN or best-effort estimates.

Flag bits (:data:`FLAG_NAMES` lists every one), OR-ed per object:

===  ================  ==============================================================
bit  name              meaning
===  ================  ==============================================================
  1  not_converged     the fit did not converge within its iteration budget
  2  at_bound          a fitted parameter hit a bound (|g| clipped below 1, size floor)
  4  hsm_failure       GalSim HSM reported a failure
  8  nonfinite         an output is NaN or infinite
 16  fit_failure       any other per-object failure of an external fitter
 32  nonpositive_flux  the galaxy's (weighted) flux is not positive: no galaxy, or a sign
                       error (networks: no pixel above zero, or the weighted or the summed
                       flux below zero by more than 5 noise sigmas)
 64  unphysical        the estimate is not a reduced shear: |g| >= 1 (a network's output, to
                       float32 round-off; fitters clip |g| and flag ``at_bound`` instead)
128  out_of_domain     the stamp lies far outside the data a network was trained on: its
                       summed flux above 10 x the training's largest or below 1/10 of its
                       smallest (by 5 noise sigmas), or its light (detected at S/N >= 20)
                       more compact than half the PSF (rules: :mod:`.network_domain`)
===  ================  ==============================================================

:func:`check_positive` and :func:`check_psf_image` are the input checks every estimator
shares (:func:`validate_inputs` runs them; the networks call them directly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "ensemble_shear",
    "EstimatorInputError",
    "EstimatorResult",
    "ShapeEstimator",
    "validate_inputs",
    "usable",
    "FLAG_NOT_CONVERGED",
    "FLAG_AT_BOUND",
    "FLAG_HSM_FAILURE",
    "FLAG_NONFINITE",
    "FLAG_FIT_FAILURE",
    "FLAG_NONPOSITIVE_FLUX",
    "FLAG_UNPHYSICAL",
    "FLAG_OUT_OF_DOMAIN",
    "FLAG_NAMES",
    "check_positive",
    "check_psf_image",
]

#: The fit did not converge within its iteration budget.
FLAG_NOT_CONVERGED = 1
#: A parameter hit a bound (e.g. |g| clipped below 1, size at its floor).
FLAG_AT_BOUND = 2
#: GalSim HSM reported a failure (``correction_status != 0`` or an error string).
FLAG_HSM_FAILURE = 4
#: An output is NaN or infinite.
FLAG_NONFINITE = 8
#: Any other per-object failure of an external fitter (e.g. ngmix ``flags != 0``).
FLAG_FIT_FAILURE = 16
#: The galaxy's (weighted) flux is not positive: no galaxy to measure, or a sign error in the input.
FLAG_NONPOSITIVE_FLUX = 32
#: The estimate is not a reduced shear: ``|g| >= 1`` (a network's unconstrained output).
FLAG_UNPHYSICAL = 64
#: The stamp lies far outside the network's training data (flux or size; rules in
#: :mod:`shearbridge.estimators.network_domain`): its estimate is an extrapolation.
FLAG_OUT_OF_DOMAIN = 128

FLAG_NAMES: dict[int, str] = {
    FLAG_NOT_CONVERGED: "not_converged",
    FLAG_AT_BOUND: "at_bound",
    FLAG_HSM_FAILURE: "hsm_failure",
    FLAG_NONFINITE: "nonfinite",
    FLAG_FIT_FAILURE: "fit_failure",
    FLAG_NONPOSITIVE_FLUX: "nonpositive_flux",
    FLAG_UNPHYSICAL: "unphysical",
    FLAG_OUT_OF_DOMAIN: "out_of_domain",
}


from shearbridge.errors import EstimatorInputError  # noqa: E402  (re-exported)


@dataclass
class EstimatorResult:
    """Per-galaxy estimates for a batch of ``N`` stamps.

    Attributes
    ----------
    g1, g2 : ndarray, shape (N,), float64
        Reduced shear ``g`` (not distortion ``e``), label convention of
        ``galsim.GSObject.shear(g1=, g2=)``.
    size : ndarray, shape (N,), or None
        Estimator-specific size in arcsec (documented by each estimator; for the
        Gaussian ML fit the intrinsic Gaussian sigma of the round-equivalent
        profile, i.e. the ``sigma`` passed to ``galsim.Gaussian`` before shearing).
    flux : ndarray, shape (N,), or None
        Total flux in image units (sum over the pixels of a noise-free stamp).
    flags : ndarray, shape (N,), int64
        0 = ok; otherwise an OR of ``FLAG_*`` bits.
    extra : dict
        Estimator-specific per-object arrays or metadata (e.g. ``chi2``).
    """

    g1: np.ndarray
    g2: np.ndarray
    size: np.ndarray | None = None
    flux: np.ndarray | None = None
    flags: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.g1 = np.asarray(self.g1, dtype=np.float64).reshape(-1)
        self.g2 = np.asarray(self.g2, dtype=np.float64).reshape(-1)
        n = self.g1.shape[0]
        if self.g2.shape[0] != n:
            raise ValueError(f"g1 and g2 lengths differ: {n} vs {self.g2.shape[0]}")
        if self.size is not None:
            self.size = np.asarray(self.size, dtype=np.float64).reshape(-1)
        if self.flux is not None:
            self.flux = np.asarray(self.flux, dtype=np.float64).reshape(-1)
        if self.flags is None:
            self.flags = np.zeros(n, dtype=np.int64)
        self.flags = np.asarray(self.flags, dtype=np.int64).reshape(-1)
        for name in ("size", "flux", "flags"):
            arr = getattr(self, name)
            if arr is not None and arr.shape[0] != n:
                raise ValueError(f"{name} has length {arr.shape[0]}, expected {n}")

    def __len__(self) -> int:
        return int(self.g1.shape[0])

    @property
    def g(self) -> np.ndarray:
        """Shape (N, 2): ``g1, g2`` stacked."""
        return np.stack([self.g1, self.g2], axis=-1)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask (N,) of unflagged objects."""
        return self.flags == 0

    @staticmethod
    def concatenate(results: list["EstimatorResult"]) -> "EstimatorResult":
        """Join results of consecutive batches (``extra`` arrays of length N are joined too)."""
        if not results:
            raise ValueError("concatenate needs at least one EstimatorResult")

        def cat(name: str) -> np.ndarray | None:
            vals = [getattr(r, name) for r in results]
            return None if any(v is None for v in vals) else np.concatenate(vals)

        extra: dict[str, Any] = {}
        for key, val in results[0].extra.items():
            if isinstance(val, np.ndarray) and val.ndim >= 1 and val.shape[0] == len(results[0]):
                extra[key] = np.concatenate([r.extra[key] for r in results])
            else:
                extra[key] = val
        return EstimatorResult(
            g1=cat("g1"),
            g2=cat("g2"),
            size=cat("size"),
            flux=cat("flux"),
            flags=cat("flags"),
            extra=extra,
        )


@runtime_checkable
class ShapeEstimator(Protocol):
    """Anything with a ``name`` and a ``measure`` method of this signature."""

    name: str

    def measure(
        self,
        stamps: np.ndarray,
        psf_image: np.ndarray,
        pixel_scale_arcsec: float,
        noise_sigma: float,
    ) -> EstimatorResult:
        """Estimate the shear of each stamp.

        Parameters
        ----------
        stamps : ndarray, shape (N, S, S)
            Galaxy images (PSF-convolved, pixel-integrated, with noise), flux units.
        psf_image : ndarray, shape (S, S)
            The PSF drawn like the galaxies (pixel response included, centred on the
            stamp's centre pixel ``S // 2`` for odd ``S``), normalised or not.
        pixel_scale_arcsec : float
            Pixel size in arcsec.
        noise_sigma : float
            Standard deviation of the white Gaussian pixel noise (> 0).
        """
        ...


def validate_inputs(
    stamps: Any,
    psf_image: Any,
    pixel_scale_arcsec: float,
    noise_sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert the inputs of :meth:`ShapeEstimator.measure`.

    Returns ``(stamps, psf_image)`` as float64 arrays of shape (N, S, S) and (S, S).
    A single stamp of shape (S, S) is promoted to (1, S, S).

    Raises
    ------
    EstimatorInputError
        For non-finite pixels, wrong dimensionality, non-square or empty stamps,
        a PSF image whose shape differs from one stamp, a PSF with non-positive
        total flux, or a non-positive / non-finite pixel scale or noise sigma.
    """
    stamps = np.asarray(stamps, dtype=np.float64)
    psf = np.asarray(psf_image, dtype=np.float64)
    if stamps.ndim == 2:
        stamps = stamps[None]
    if stamps.ndim != 3:
        raise EstimatorInputError(f"stamps must have shape (N, S, S), got {stamps.shape}")
    n, ny, nx = stamps.shape
    if n == 0:
        raise EstimatorInputError("stamps is empty (N = 0)")
    if ny != nx:
        raise EstimatorInputError(f"stamps must be square, got {ny}x{nx}")
    if psf.ndim != 2:
        raise EstimatorInputError(f"psf_image must have shape (S, S), got {psf.shape}")
    if psf.shape != (ny, nx):
        raise EstimatorInputError(
            f"psf_image shape {psf.shape} does not match the stamp shape {(ny, nx)}"
        )
    if not np.all(np.isfinite(stamps)):
        bad = int(np.sum(~np.all(np.isfinite(stamps), axis=(1, 2))))
        raise EstimatorInputError(f"stamps contain NaN or inf ({bad} of {n} stamps affected)")
    check_psf_image(psf)
    check_positive("pixel_scale_arcsec", pixel_scale_arcsec)
    check_positive("noise_sigma", noise_sigma)
    return stamps, psf


def check_positive(name: str, value: Any) -> float:
    """``value`` as a float; :class:`EstimatorInputError` naming ``name`` unless it is a positive,
    finite real number (``None``, a string, an array, 0, a negative number, NaN, inf: refused)."""
    try:
        x = None if isinstance(value, (bool, str, bytes)) or np.ndim(value) else float(value)
    except (TypeError, ValueError):
        x = None
    if x is None or not (np.isfinite(x) and x > 0):
        raise EstimatorInputError(f"{name} must be a positive, finite number, got {value!r}")
    return x


def check_psf_image(psf: np.ndarray, prefix: str = "") -> np.ndarray:
    """Refuse a PSF image (float array, one image (S, S) or one per stamp (N, S, S)) that holds NaN
    or infinite pixels or whose total flux (of each image) is not positive; returns it unchanged."""
    if not np.all(np.isfinite(psf)):
        raise EstimatorInputError(f"{prefix}psf_image contains NaN or infinite pixels")
    total = psf.sum(axis=(-2, -1))
    if not np.all(total > 0):
        worst = float(np.min(total))
        raise EstimatorInputError(
            f"{prefix}psf_image has non-positive total flux {worst:.6g}; "
            "it must have positive total flux (a PSF, not a negated or empty "
            "image)"
        )
    return psf


def usable(
    g: np.ndarray, flags: np.ndarray | None, response: np.ndarray | None = None
) -> np.ndarray:
    """Boolean mask (N,) of the estimates a study scores: unflagged (``flags`` None: none is) and
    finite in both components (``g`` (N, 2)), and, for an estimator with a shear response
    (``response`` (N, 2), AnaCal), a finite response."""
    ok = np.all(np.isfinite(np.asarray(g)), axis=1)
    if flags is not None:
        ok &= np.asarray(flags) == 0
    if response is not None:
        ok &= np.all(np.isfinite(np.asarray(response)), axis=1)
    return ok


def ensemble_shear(
    e: np.ndarray, response: np.ndarray, mask: np.ndarray | None = None
) -> tuple[float, float]:
    """Shear ``(g1, g2)`` of an ensemble: ``sum(e_k) / sum(R_k)`` for ``k = 1, 2``.

    ``e`` and ``response`` are (N, 2): ``EstimatorResult.g`` and ``extra["response"]`` of
    :class:`~shearbridge.estimators.anacal.AnaCalEstimator`. ``mask`` (N,) picks the objects;
    ``None``: every object whose ``e`` and ``R`` are finite (a mask selecting a non-finite row is an
    error).
    """
    e = np.asarray(e, dtype=np.float64)
    r = np.asarray(response, dtype=np.float64)
    if e.ndim != 2 or e.shape[1] != 2 or r.shape != e.shape:
        raise ValueError(f"e and response must both have shape (N, 2), got {e.shape}, {r.shape}")
    finite = np.all(np.isfinite(e), axis=1) & np.all(np.isfinite(r), axis=1)
    use = finite if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
    if use.shape[0] != e.shape[0]:
        raise ValueError(f"mask has length {use.shape[0]}, expected {e.shape[0]}")
    if not np.all(finite[use]):
        raise ValueError("mask selects objects with non-finite e or response")
    if not np.any(use):
        raise ValueError("no objects to average")
    den = r[use].sum(axis=0)
    return float(e[use, 0].sum() / den[0]), float(e[use, 1].sum() / den[1])

"""A trained network behind the common estimator interface.

:class:`NetworkEstimator` wraps a :class:`shearbridge.models.Trained` (loaded by the
pipeline step that owns the run folder) so that every study measures a network the
way it measures a classical estimator: ``measure(stamps, psf_image, pixel_scale_arcsec,
noise_sigma) -> EstimatorResult``. A per-level network sees only the stamps; the PSF it was
trained for is part of the trained model. :class:`PSFNetEstimator` (the population study's
network, trained once) is told the PSF image and noise sigma. Networks never flag an object.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shearbridge.estimators.base import EstimatorInputError, EstimatorResult

__all__ = ["NetworkEstimator", "PSFNetEstimator", "NETWORK_BATCH", "PSF_TOLERANCE", "psf_sigma_px"]

#: Stamps per compiled network call (the last batch is zero-padded: one compilation).
NETWORK_BATCH = 256


class NetworkEstimator:
    """``measure`` = the trained network's (g1, g2) in label units.

    Parameters
    ----------
    trained : shearbridge.models.Trained
        The network, its parameters and label statistics.
    name : str
        The method's registry name (for messages and results).
    batch_size : int
        Stamps per compiled call.
    """

    def __init__(self, trained: Any, name: str, batch_size: int = NETWORK_BATCH, strict: bool = False) -> None:
        self.trained = trained
        self.name = name
        self.batch_size = int(batch_size)
        self.strict = strict  # also check the PSF and the pixel scale (a user's stamps; not the studies)
        self.warmup_stamps = self.batch_size  # an untimed first call compiles the full batch

    def measure(self, stamps: np.ndarray, psf_image: np.ndarray | None = None,
                pixel_scale_arcsec: float | None = None, noise_sigma: float | None = None) -> EstimatorResult:
        """(g1, g2) of each stamp; flags are all zero. PSF, pixel scale and noise are not inputs of
        today's networks: they are accepted for the common signature and not used."""
        stamps = np.asarray(stamps)
        if stamps.ndim == 2:
            stamps = stamps[None]
        if stamps.ndim != 3 or stamps.shape[1] != stamps.shape[2] or len(stamps) == 0:
            raise EstimatorInputError(f"{self.name}: stamps must have shape (N, S, S) with N > 0, got {stamps.shape}")
        if self.strict:
            self._check_like_training(psf_image, pixel_scale_arcsec)
        trained_px = self.trained.meta.get("stamp_size_px")
        if trained_px is not None and stamps.shape[1] != int(trained_px):
            raise EstimatorInputError(f"{self.name}: trained on {trained_px}x{trained_px} stamps, "
                                      f"got {stamps.shape[1]}x{stamps.shape[2]}")
        g = np.asarray(self.trained.predict(stamps, self.batch_size)[:, :2], np.float64)
        return EstimatorResult(g1=g[:, 0], g2=g[:, 1])

    def with_psf(self, psf_image: np.ndarray) -> "NetworkEstimator":
        """The same network told another PSF: a model with a ``psf_sigma_px`` field (its analytic
        moment part) gets the Gaussian-equivalent sigma of ``psf_image`` (:func:`psf_sigma_px`),
        the learned weights unchanged. Metacalibration tells it the reconvolution PSF this way; a
        network with no PSF parameter cannot be told one (EstimatorInputError)."""
        import dataclasses

        model = self.trained.model
        if getattr(model, "psf_sigma_px", None) is None:
            raise EstimatorInputError(f"{self.name}: the network has no PSF parameter to be told another PSF")
        told = dataclasses.replace(self.trained, model=model.clone(psf_sigma_px=psf_sigma_px(psf_image)))
        return NetworkEstimator(told, self.name, self.batch_size, self.strict)

    def _check_like_training(self, psf_image: np.ndarray | None, pixel_scale_arcsec: float | None) -> None:
        """Refuse a PSF whose size or a pixel scale that differs from the training data's by more
        than :data:`PSF_TOLERANCE` (the robustness study measures networks off their training data on
        purpose; a user's catalogue should not do so silently)."""
        meta = self.trained.meta
        scale = meta.get("pixel_scale_arcsec")
        if scale is not None and pixel_scale_arcsec is not None and abs(pixel_scale_arcsec / scale - 1) > 1e-6:
            raise EstimatorInputError(f"{self.name}: trained on {scale}''/px stamps, got {pixel_scale_arcsec}''/px")
        want = meta.get("psf_moment_sigma_px")
        if want is not None and psf_image is not None:
            got = psf_sigma_px(np.asarray(psf_image, np.float64))
            if abs(got / want - 1) > PSF_TOLERANCE:
                raise EstimatorInputError(f"{self.name}: trained for a PSF of moment sigma {want:.3g} px, this PSF "
                                          f"image has {got:.3g} px (unweighted second moments, pixel removed)")


class PSFNetEstimator:
    """``measure`` = PSFNet's (g1, g2) (:mod:`shearbridge.models.psfnet`), told the PSF image and the
    noise sigma of the stamps; its per-galaxy uncertainty ``s`` is ``extra["sigma_g"]``.

    Parameters
    ----------
    model, params
        The network and its trained parameters (the population study's, as the pipeline step loads them).
    name : str
        The method's registry name (for messages).
    stamp_size_px : int
        The stamp size it was trained on (the population's): other sizes are refused.
    """

    def __init__(self, model: Any, params: Any, name: str, batch_size: int = NETWORK_BATCH,
                 stamp_size_px: int = 53) -> None:
        import jax

        self.model, self.params, self.name = model, params, name
        self.batch_size, self.stamp_size_px = int(batch_size), int(stamp_size_px)
        self.warmup_stamps = self.batch_size
        self._apply = jax.jit(model.apply)

    def measure(self, stamps: np.ndarray, psf_image: np.ndarray | None = None,
                pixel_scale_arcsec: float | None = None, noise_sigma: float | None = None) -> EstimatorResult:
        """(g1, g2) of each stamp, flags all zero. ``psf_image`` is one (S, S) image for every stamp or
        one per stamp (N, S, S), scaled to unit sum; ``noise_sigma`` (image units) is required."""
        stamps = np.asarray(stamps, np.float32)
        if stamps.ndim == 2:
            stamps = stamps[None]
        s = self.stamp_size_px
        if stamps.ndim != 3 or stamps.shape[1:] != (s, s) or len(stamps) == 0:
            raise EstimatorInputError(f"{self.name}: stamps must have shape (N, {s}, {s}) with N > 0, "
                                      f"got {stamps.shape}")
        if psf_image is None or noise_sigma is None or not np.isfinite(noise_sigma) or not noise_sigma > 0:
            raise EstimatorInputError(f"{self.name}: needs the PSF image and a positive noise sigma "
                                      f"(got {noise_sigma!r})")
        psf = np.asarray(psf_image, np.float64)
        psf = np.broadcast_to(psf, stamps.shape) if psf.shape == (s, s) else psf
        total = psf.sum(axis=(1, 2), keepdims=True) if psf.shape == stamps.shape else None
        if total is None or not np.all(np.isfinite(psf)) or not np.all(total > 0):
            raise EstimatorInputError(f"{self.name}: psf_image must be finite, of positive sum, and ({s}, {s}) or "
                                      f"(N, {s}, {s}); got {np.shape(psf_image)}")
        if not np.all(np.isfinite(stamps)):
            raise EstimatorInputError(f"{self.name}: stamps contain NaN or inf")
        out = np.asarray(self.predict(stamps, (psf / total).astype(np.float32), float(noise_sigma)), np.float64)
        return EstimatorResult(g1=out[:, 0], g2=out[:, 1], extra={"sigma_g": np.exp(out[:, 2])})

    def predict(self, stamps: np.ndarray, psfs: np.ndarray, noise_sigma: float) -> np.ndarray:
        """The network's raw ``(N, 3)`` output (``g1, g2, log s``) on checked inputs: stamps ``(N, S, S)``,
        one PSF image per stamp as given (not rescaled), one noise sigma; in fixed-size batches
        (:func:`shearbridge.models.predict.map_batches`). :meth:`measure` checks and calls it; the
        population study calls it directly on its own cells."""
        from shearbridge.models.predict import map_batches

        sigma = np.full(len(stamps), noise_sigma, np.float32)
        return map_batches(lambda x, p, n: self._apply(self.params, x, p, n), stamps, self.batch_size, psfs, sigma)


#: Largest relative difference of PSF sigma between a user's PSF image and the training data's.
PSF_TOLERANCE = 0.05


def psf_sigma_px(psf_image: np.ndarray) -> float:
    """Gaussian-equivalent sigma (pixels) of a pixelised PSF image from its second moments,
    the pixel's 1/12 px^2 removed (exact for a Gaussian PSF)."""
    img = np.clip(np.asarray(psf_image, np.float64), 0.0, None)
    if img.ndim != 2 or not img.sum() > 0:
        raise EstimatorInputError(f"psf_image must be a 2-d image of positive flux, got shape {img.shape}")
    y, x = np.indices(img.shape, dtype=np.float64)
    w = img / img.sum()
    xc, yc = (w * x).sum(), (w * y).sum()
    var = 0.5 * ((w * (x - xc) ** 2).sum() + (w * (y - yc) ** 2).sum()) - 1.0 / 12.0
    return float(np.sqrt(max(var, 1e-12)))


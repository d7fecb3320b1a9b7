"""A trained network behind the common estimator interface.

:class:`NetworkEstimator` wraps a :class:`shearbridge.models.Trained` (loaded by the
pipeline step that owns the run folder) so that every study measures a network the
way it measures a classical estimator: ``measure(stamps, psf_image, pixel_scale_arcsec,
noise_sigma) -> EstimatorResult``. The network sees only the stamps; the PSF it was
trained for is part of the trained model, and networks never flag an object.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shearbridge.estimators.base import EstimatorInputError, EstimatorResult

__all__ = ["NetworkEstimator", "NETWORK_BATCH"]

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

    def __init__(self, trained: Any, name: str, batch_size: int = NETWORK_BATCH) -> None:
        self.trained = trained
        self.name = name
        self.batch_size = int(batch_size)

    def measure(self, stamps: np.ndarray, psf_image: np.ndarray | None = None,
                pixel_scale_arcsec: float | None = None, noise_sigma: float | None = None) -> EstimatorResult:
        """(g1, g2) of each stamp; flags are all zero. PSF, pixel scale and noise are not inputs of
        today's networks: they are accepted for the common signature and not used."""
        stamps = np.asarray(stamps)
        if stamps.ndim == 2:
            stamps = stamps[None]
        if stamps.ndim != 3 or stamps.shape[1] != stamps.shape[2] or len(stamps) == 0:
            raise EstimatorInputError(f"{self.name}: stamps must have shape (N, S, S) with N > 0, got {stamps.shape}")
        trained_px = self.trained.meta.get("stamp_size_px")
        if trained_px is not None and stamps.shape[1] != int(trained_px):
            raise EstimatorInputError(f"{self.name}: trained on {trained_px}x{trained_px} stamps, "
                                      f"got {stamps.shape[1]}x{stamps.shape[2]}")
        g = np.asarray(self.trained.predict(stamps, self.batch_size)[:, :2], np.float64)
        return EstimatorResult(g1=g[:, 0], g2=g[:, 1])

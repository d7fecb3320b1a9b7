"""Per-galaxy shape estimators, the Cramer-Rao bound and multiplicative/additive bias.

Submodules (imported lazily, so that ``import shearbridge.estimators`` stays cheap):

``base``           :class:`EstimatorResult`, the :class:`ShapeEstimator` protocol, input checks
``render``         JAX renderer of PSF-convolved, pixelised elliptical Gaussian/exponential galaxies
``mlfit``          JAX maximum-likelihood (Levenberg-Marquardt) fitter, ``MLFitEstimator``
``hsm``            GalSim HSM REGAUSS / KSB wrappers
``crlb``           per-galaxy Fisher matrix and Cramer-Rao bound on g1, g2
``bias``           m and c from paired (+g, -g, 0/90 deg) shear tests, with jackknife errors
``metacal``        metacalibration response on top of any estimator (GalSim based)
``ngmix_adapter``  ngmix ML fit behind the same interface (needs ngmix)
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import (
    FLAG_AT_BOUND,
    FLAG_FIT_FAILURE,
    FLAG_HSM_FAILURE,
    FLAG_NONFINITE,
    FLAG_NOT_CONVERGED,
    EstimatorInputError,
    EstimatorResult,
    ShapeEstimator,
    validate_inputs,
)

__all__ = [
    "EstimatorInputError",
    "EstimatorResult",
    "ShapeEstimator",
    "validate_inputs",
    "FLAG_AT_BOUND",
    "FLAG_FIT_FAILURE",
    "FLAG_HSM_FAILURE",
    "FLAG_NONFINITE",
    "FLAG_NOT_CONVERGED",
]

_SUBMODULES = ("render", "mlfit", "hsm", "crlb", "bias", "metacal", "ngmix_adapter")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

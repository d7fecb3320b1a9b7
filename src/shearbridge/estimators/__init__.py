"""Per-galaxy shape estimators behind one interface (pure: arrays in, :class:`EstimatorResult` out).

Submodules (imported lazily, so that ``import shearbridge.estimators`` stays cheap):

``base``           :class:`EstimatorResult`, the :class:`ShapeEstimator` protocol, input checks
``render``         JAX renderer of PSF-convolved, pixelised elliptical Gaussian/exponential galaxies
``mlfit``          JAX maximum-likelihood (Levenberg-Marquardt) fitter, ``MLFitEstimator``
``hsm``            GalSim HSM REGAUSS / KSB wrappers
``ngmix_adapter``  ngmix ML fit behind the same interface (needs ngmix)
``ngmix_support``  the optional ngmix import and the array-to-observation conversion
``network``        a trained network behind the same interface
``network_domain`` what a network can measure: its flags (flux, size, |g| >= 1)

The Cramér–Rao bound, the shear-bias statistics and the metacalibration response are in
:mod:`shearbridge.stats`.
"""

from __future__ import annotations

import importlib
from typing import Any

from shearbridge.estimators.base import (
    FLAG_AT_BOUND,
    FLAG_FIT_FAILURE,
    FLAG_HSM_FAILURE,
    FLAG_NONFINITE,
    FLAG_NONPOSITIVE_FLUX,
    FLAG_NOT_CONVERGED,
    FLAG_OUT_OF_DOMAIN,
    FLAG_UNPHYSICAL,
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
    "FLAG_NONPOSITIVE_FLUX",
    "FLAG_UNPHYSICAL",
    "FLAG_OUT_OF_DOMAIN",
]

_SUBMODULES = (
    "render",
    "mlfit",
    "hsm",
    "ngmix_adapter",
    "ngmix_support",
    "network",
    "network_domain",
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Builders of the registry's methods (:mod:`shearbridge.study`): ``build(context) -> estimator``.

Each takes a :class:`shearbridge.study.MethodContext` (the profile's seed, the noise level, the
loaders of trained networks the calling step provides) and returns an object with the common
estimator interface; the estimator modules are imported only when a method is built. Every builder
first refuses a noise level that is not a positive, finite number (:func:`checked_noise`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shearbridge.config import ConfigError

__all__ = [
    "network",
    "psfnet",
    "mlfit",
    "hsm",
    "ngmix",
    "anacal",
    "anacal_truth",
    "anacal_detect",
    "anacal_installed",
    "ngmix_installed",
    "PSFNET_ENTRY",
    "checked_noise",
]

#: The population study's network entry the ``psfnet`` method measures with (its first
#: training seed).
PSFNET_ENTRY = "0"


def checked_noise(ctx: Any, method: str) -> float:
    """The context's noise sigma; :class:`~shearbridge.errors.EstimatorInputError` naming the method
    unless it is a positive, finite number."""
    from shearbridge.estimators.base import check_positive

    return check_positive(f"{method}: noise_sigma", getattr(ctx, "noise_sigma", None))


def network(experiment: str) -> Callable[[Any], Any]:
    def build(ctx: Any) -> Any:
        from shearbridge.estimators.network import NetworkEstimator

        checked_noise(ctx, experiment)
        if ctx.load_network is None:
            raise ConfigError(f"network {experiment!r} needs a context with load_network")
        return NetworkEstimator(ctx.load_network(experiment, ctx.noise_sigma), experiment)

    return build


def psfnet(ctx: Any) -> Any:
    from shearbridge.estimators.network import PSFNetEstimator

    checked_noise(ctx, "psfnet")
    if ctx.load_population is None:
        raise ConfigError("psfnet needs a context with load_population")
    model, params = ctx.load_population(PSFNET_ENTRY)
    return PSFNetEstimator(model, params, "psfnet")


def mlfit(ctx: Any) -> Any:
    from shearbridge.estimators.mlfit import MLFitEstimator

    checked_noise(ctx, "mlfit")
    return MLFitEstimator(model="gauss", seed=ctx.seed)


def hsm(method: str) -> Callable[[Any], Any]:
    def build(ctx: Any) -> Any:
        from shearbridge.estimators.hsm import HSMEstimator

        checked_noise(ctx, f"hsm_{method.lower()}")
        return HSMEstimator(method=method)

    return build


def ngmix(ctx: Any) -> Any:
    from shearbridge.estimators.ngmix_adapter import NgmixMLEstimator

    checked_noise(ctx, "ngmix")
    return NgmixMLEstimator(model="gauss", seed=ctx.seed)


def anacal(ctx: Any) -> Any:
    from shearbridge.estimators.anacal import AnaCalEstimator

    checked_noise(ctx, "anacal")
    # the shear test's four stamps of one galaxy and orientation share one renoising image,
    # antithetic in +-n
    return AnaCalEstimator(seed=ctx.seed, noise_share=4, antithetic=True)


def anacal_truth(ctx: Any) -> Any:
    """AnaCal at each galaxy's true position: a control of the survey test, not a method."""
    from shearbridge.estimators.anacal import AnaCalEstimator

    checked_noise(ctx, "anacal_true")
    return AnaCalEstimator(
        seed=ctx.seed, noise_share=4, antithetic=True, detection="truth", name="anacal_true"
    )


def anacal_detect(ctx: Any) -> Any:
    """AnaCal as a survey runs it: its own detection with detection and selection responses."""
    from shearbridge.estimators.anacal_detect import AnaCalDetectEstimator

    checked_noise(ctx, "anacal_detect")
    return AnaCalDetectEstimator(seed=ctx.seed, noise_share=4, antithetic=True)


def anacal_installed() -> bool:
    from shearbridge.estimators.anacal import anacal_available

    return anacal_available()


def ngmix_installed() -> bool:
    from shearbridge.estimators.ngmix_adapter import NgmixUnavailable, import_ngmix

    try:
        import_ngmix()
    except NgmixUnavailable:
        return False
    return True

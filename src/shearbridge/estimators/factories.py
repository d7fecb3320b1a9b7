"""The builders of the registry's methods (:mod:`shearbridge.study`): ``build(context) -> estimator``.

Each takes a :class:`shearbridge.study.MethodContext` (the profile's seed, the noise level, the
loaders of trained networks the calling step provides) and returns an object with the common
estimator interface; the estimator modules are imported only when a method is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shearbridge.config import ConfigError

__all__ = ["network", "psfnet", "mlfit", "hsm", "ngmix", "anacal", "anacal_installed", "ngmix_installed",
           "PSFNET_ENTRY"]

#: The population study's network entry the ``psfnet`` method measures with (its first training seed).
PSFNET_ENTRY = "0"


def network(experiment: str) -> Callable[[Any], Any]:
    def build(ctx: Any) -> Any:
        from shearbridge.estimators.network import NetworkEstimator

        if ctx.load_network is None:
            raise ConfigError(f"network {experiment!r} needs a context with load_network")
        return NetworkEstimator(ctx.load_network(experiment, ctx.noise_sigma), experiment)

    return build


def psfnet(ctx: Any) -> Any:
    from shearbridge.estimators.network import PSFNetEstimator

    if ctx.load_population is None:
        raise ConfigError("psfnet needs a context with load_population")
    model, params = ctx.load_population(PSFNET_ENTRY)
    return PSFNetEstimator(model, params, "psfnet")


def mlfit(ctx: Any) -> Any:
    from shearbridge.estimators.mlfit import MLFitEstimator
    return MLFitEstimator(model="gauss", seed=ctx.seed)


def hsm(method: str) -> Callable[[Any], Any]:
    def build(ctx: Any) -> Any:
        from shearbridge.estimators.hsm import HSMEstimator
        return HSMEstimator(method=method)
    return build


def ngmix(ctx: Any) -> Any:
    from shearbridge.estimators.ngmix_adapter import NgmixMLEstimator
    return NgmixMLEstimator(model="gauss", seed=ctx.seed)


def anacal(ctx: Any) -> Any:
    from shearbridge.estimators.anacal import AnaCalEstimator
    # the shear test's four stamps of one galaxy and orientation share one renoising image, antithetic in +-n
    return AnaCalEstimator(seed=ctx.seed, noise_share=4, antithetic=True)


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

"""shearbridge: precision-preserving CNN shear measurement, from NumPy to JAX/Flax.

The library behind the paper in ``src/tex/ms.tex`` (the tree, one line a module:
``docs/architecture.md``). Layers, bottom up: ``config`` (profiles, experiments, seeds),
``sim`` (GalSim stamps, cached datasets), ``models`` (blocks, networks, checkpoints),
``train``, ``estimators`` (every shape estimator behind one interface), ``stats`` (the
Cramér–Rao bound, shear bias, response), ``diagnosis``, ``study`` (the registry of methods
and studies), ``steps`` (the pipeline's I/O), ``summaries`` and ``paper``.

Measure your own stamps with any registered method::

    import shearbridge
    est = shearbridge.estimator("mlfit", noise_sigma=1e-3)
    result = est.measure(stamps, psf_image, 0.141, 1e-3)   # result.g1, result.g2, result.flags
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["estimator", "__version__"]


def estimator(method: str, noise_sigma: float, *, profile: Any = None) -> Any:
    """The estimator of a registered method (:mod:`shearbridge.study`) for stamps of pixel
    noise ``noise_sigma``: ``.measure(stamps, psf_image, pixel_scale_arcsec, noise_sigma)``.

    A network uses the weights the profile (default: the active one) trained at that noise
    level, and refuses stamps, PSFs or pixel scales other than those it was trained on; when
    the weights are missing the error names the command that makes them.
    """
    from shearbridge.steps.measure import user_estimator

    return user_estimator(method, noise_sigma, profile)

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

from shearbridge.version import __version__

__all__ = ["estimator", "__version__"]


def __getattr__(name: str) -> Any:
    """``shearbridge.estimator`` (:func:`shearbridge.api.estimator`), imported on first use so that
    ``import shearbridge.config`` stays light."""
    if name == "estimator":
        from shearbridge.api import estimator

        return estimator
    raise AttributeError(f"module 'shearbridge' has no attribute {name!r}")

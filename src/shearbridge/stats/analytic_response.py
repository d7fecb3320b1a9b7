"""The analytic shear response of a differentiable estimator: one forward-mode JVP per component.

For an estimator ``g_hat(I)`` that JAX can differentiate (a network, a moments formula) and a
stamp's metacalibration images (:func:`shearbridge.stats.metacal_fourier.metacal_images`: the
deconvolved-and-reconvolved ``noshear`` image ``N`` and the shear derivatives ``D_j`` per unit
shear), the response is

    R_ij = d g_hat_i(N + g_j D_j) / d g_j at g = 0 = (dg_hat_i / dI) . D_j,

the directional derivative of the estimator along ``D_j``: one ``jax.jvp`` per component, exact to
the estimator's arithmetic, with no re-rendering and no finite step. Metacalibration's finite
difference ``(g_hat(N + h D_j) - g_hat(N - h D_j)) / 2h`` is the same quantity up to ``O(h^2)``
(the images are linear in ``h``, so only the estimator's curvature enters); :func:`fd_response`
computes it for the checks.

The estimator is passed as ``predict(x) -> (B, 2)`` on a batch ``x`` (B, S, S): a closure that
holds whatever else it needs (a network's parameters, each stamp's reconvolution PSF, the noise
sigma). Stamps must not interact within a batch (no batch statistics), so that the batch JVP is
the per-stamp one; :func:`analytic_response` works in batches of ``batch_size``.

PSFNet as trained stops gradients at its input (:func:`shearbridge.models.psfnet.psfnet_features`
wraps the stamp in ``stop_gradient``): its JVP is zero, and :func:`analytic_response` refuses it
with that reason; the network must be made differentiable in its input first.

This module does not correct noise bias: the response of a noisy stamp is the response at that
noise realisation (what the issue's renoising or second-order correction acts on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["analytic_response", "fd_response"]


def _check(noshear: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> None:
    shape = np.shape(noshear)
    if len(shape) != 3 or np.shape(d1) != shape or np.shape(d2) != shape:
        raise ValueError(
            f"noshear, d1, d2 must share one (N, S, S) shape, got {shape}, {np.shape(d1)}, "
            f"{np.shape(d2)}"
        )
    for name, a in (("noshear", noshear), ("d1", d1), ("d2", d2)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf")


def analytic_response(
    predict: Callable[[Any], Any],
    noshear: np.ndarray,
    d1: np.ndarray,
    d2: np.ndarray,
    batch_size: int = 256,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """``(g, R)``: the estimates on ``noshear`` (N, 2) and the responses ``R[n, i, j] =
    dg_i/dg_j`` (N, 2, 2) by one JVP per component (module docstring); inputs cast to ``dtype``
    (the estimator's precision)."""
    import jax
    import jax.numpy as jnp

    _check(noshear, d1, d2)
    n = len(noshear)
    g = np.empty((n, 2))
    resp = np.empty((n, 2, 2))
    jvp = jax.jit(lambda x, t: jax.jvp(lambda y: predict(y)[:, :2], (x,), (t,)))
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        x = jnp.asarray(noshear[lo:hi], dtype)
        for j, d in enumerate((d1, d2)):
            out, tangent = jvp(x, jnp.asarray(d[lo:hi], dtype))
            resp[lo:hi, :, j] = np.asarray(tangent, np.float64)
        g[lo:hi] = np.asarray(out, np.float64)
    if not np.any(resp) and np.any(np.isfinite(g)):
        raise ValueError(
            "the estimator's output does not depend differentiably on the stamps (every JVP is "
            "zero): a stop_gradient on its input? (PSFNet's features stop gradients at the stamp)"
        )
    return g, resp


def fd_response(
    predict: Callable[[Any], Any],
    noshear: np.ndarray,
    d1: np.ndarray,
    d2: np.ndarray,
    step: float = 0.01,
    dtype: Any = np.float32,
) -> np.ndarray:
    """Metacalibration's central difference ``(g(N + step D_j) - g(N - step D_j)) / 2 step``,
    (N, 2, 2): the reference :func:`analytic_response` is checked against."""
    import jax.numpy as jnp

    _check(noshear, d1, d2)
    if not 0 < step < 0.1:
        raise ValueError(f"step must satisfy 0 < step < 0.1, got {step}")
    n = np.asarray(noshear, np.float64)
    resp = np.empty((len(n), 2, 2))
    for j, d in enumerate((d1, d2)):
        d = np.asarray(d, np.float64)
        plus = np.asarray(predict(jnp.asarray(n + step * d, dtype))[:, :2], np.float64)
        minus = np.asarray(predict(jnp.asarray(n - step * d, dtype))[:, :2], np.float64)
        resp[:, :, j] = (plus - minus) / (2 * step)
    return resp

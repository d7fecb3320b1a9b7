"""Where does a CNN lose shear information? Fisher information retained layer by layer.

Linearise a network's layer ``l`` at a stamp ``x0``: ``h_l(x0 + dx) ~ h_l(x0) + J_l dx``.
With white pixel noise of standard deviation ``sigma_n`` and ``G = dx/dtheta`` the
image's derivatives with respect to ``theta = (flux, x0, y0, size, g1, g2)`` (units of
:mod:`shearbridge.estimators.render`: image units, arcsec, arcsec, arcsec (Gaussian
sigma), reduced shear), the Fisher information carried by ``h_l`` is::

    I_l = G^T J_l^T (J_l Sigma J_l^T)^+ J_l G = G^T P_l G / sigma_n^2,

``P_l`` the orthogonal projector onto the row space of ``J_l``, and the image itself
carries ``I_image = G^T G / sigma_n^2``. ``I_l <= I_image`` (data processing), and for a
*linearised* network the ratio does not depend on ``sigma_n``: the noise enters only
through the linearisation point (which ReLUs are on), so each network is linearised
both at noisy stamps ``clean + sigma_n * noise`` and at the clean stamp.

Computation (:func:`layer_fisher`): the layer's responses to unit changes of the
``w x w`` pixels of a window around the galaxy (``w^2`` forward-mode JVPs, float64) give
``T = J_l^T`` restricted to the window; ``P_l G`` is the regularised least-squares
projection ``K (K + eps 1)^-1 G`` with ``K = T T^T`` (or its ``d x d`` dual when the layer
is narrower than the window), ``eps = rcond^2 * trace(K) / rank_max``: directions whose
singular value is far above ``rcond`` times the RMS singular value count fully, those
far below count not at all, so the ratio is ``<= 1`` whatever the round-off. Pixels
outside the window are held fixed, and the information is compared with that of the
same window's pixels (:func:`~shearbridge.diagnosis.information.window_capture` says how
much of the whole stamp's information the window holds).

Summaries per shear component ``k`` (:func:`shear_information`): the effective
information ``1 / [I^-1]_kk`` (every other parameter marginalised: ``"marginal"``), the
same with Gaussian priors on the nuisance parameters (``"prior"``), or with flux,
centroid and size known (``"fixed"``: the ``(g1, g2)`` block). The retained fraction of
layer ``l`` is the ratio of CRLB variances ``[I_image^-1]_kk / [I_l^-1]_kk``, averaged
over ``k = g1, g2``. Note that a layer with fewer than 6 outputs (the 4-output head)
cannot carry 6-parameter information: its ``"marginal"`` fraction is 0 by counting.

The networks' feature functions live in :mod:`shearbridge.diagnosis.features`, the
per-galaxy bookkeeping and summaries in :mod:`shearbridge.diagnosis.information`, the
empirical counterparts in :mod:`shearbridge.diagnosis.probes`,
:mod:`shearbridge.diagnosis.subpixel` and :mod:`shearbridge.diagnosis.vision`; the
pipeline step :mod:`shearbridge.steps.diagnose` runs everything for a profile.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DEFAULT_RCOND",
    "MODES",
    "PARAM_NAMES",
    "SCHUR_RCOND",
    "SHEAR",
    "FeatureFn",
    "layer_fisher",
    "projected_information",
    "retained_fraction",
    "shear_information",
]

#: Parameters of ``G`` (see :mod:`shearbridge.estimators.render`); g1, g2 are the last two.
PARAM_NAMES = ("flux", "x0", "y0", "size", "g1", "g2")
SHEAR = (4, 5)
MODES = ("marginal", "prior", "fixed")
#: Relative singular-value scale of the soft rank threshold (see the module docstring).
DEFAULT_RCOND = 1e-5
#: Relative eigenvalue threshold of the pseudo-inverse in the generalised Schur complement.
SCHUR_RCOND = 1e-10

#: ``(params, image (S, S), window origin (2,) int) -> {layer: activations}``
FeatureFn = Callable[[Any, jax.Array, jax.Array], Mapping[str, jax.Array]]


# --------------------------------------------------------------------------- linear algebra


def projected_information(tangents: jax.Array, G: jax.Array, rcond: jax.Array | float) -> jax.Array:
    """``G^T P G`` for the soft projector ``P`` onto the span of the rows of ``tangents``.

    Parameters
    ----------
    tangents : array (n, d)
        Row ``i`` is the layer's response to a unit change of pixel ``i``
        (``J^T`` restricted to ``n`` pixels).
    G : array (n, p)
        Image derivatives of those pixels.
    rcond : float
        Relative singular-value threshold (see the module docstring).

    Returns
    -------
    array (p, p)
        The information at unit pixel noise; all zeros for a layer that ignores the pixels.
    """
    n, d = tangents.shape
    dual = d < n  # then use the d x d Gram of the layer's outputs: I = (J G)^T (J J^T + eps)^-1 J G
    gram = tangents.T @ tangents if dual else tangents @ tangents.T
    rhs = tangents.T @ G if dual else gram @ G  # J G, or K G
    trace = jnp.trace(gram)
    eps = jnp.where(trace > 0, rcond**2 * trace / min(n, d), 1.0)
    factor = jax.scipy.linalg.cho_factor(gram + eps * jnp.eye(min(n, d), dtype=gram.dtype))
    info = rhs.T @ jax.scipy.linalg.cho_solve(factor, rhs if dual else G)
    return jnp.where(trace > 0, 0.5 * (info + info.T), 0.0)


@functools.partial(jax.jit, static_argnames=("feature_fn", "w", "chunk"))
def _layer_fisher(feature_fn, params, x0, origin, G, rcond, w, chunk):
    xw0 = jax.lax.dynamic_slice(x0, origin, (w, w)).reshape(-1)

    def f(xw: jax.Array) -> Mapping[str, jax.Array]:
        x = jax.lax.dynamic_update_slice(x0, xw.reshape(w, w), origin)
        return feature_fn(params, x, origin)

    basis = jnp.eye(w * w, dtype=x0.dtype)
    tangents = jax.lax.map(lambda v: jax.jvp(f, (xw0,), (v,))[1], basis, batch_size=chunk)
    return {k: projected_information(t.reshape(w * w, -1), G, rcond) for k, t in tangents.items()}


def layer_fisher(
    feature_fn: FeatureFn,
    params: Any,
    x0: np.ndarray,
    G: np.ndarray,
    origin: tuple[int, int] = (0, 0),
    w: int | None = None,
    *,
    rcond: float = DEFAULT_RCOND,
    chunk: int = 64,
) -> dict[str, np.ndarray]:
    """Fisher information (unit pixel noise) of every layer, linearised at ``x0``.

    Parameters
    ----------
    feature_fn : callable
        ``(params, image (S, S), origin) -> {layer: array}``; must be hashable (one
        compilation per function, window size and chunk).
    params : pytree
        Network parameters (cast to float64 here).
    x0 : array (S, S)
        Linearisation point (image units).
    G : array (w, w, p) or (w*w, p)
        Image derivatives of the window's pixels.
    origin, w : window's top-left pixel (row, column) and side in pixels
        (default: the whole stamp).
    rcond : float
        Soft rank threshold (:func:`projected_information`).
    chunk : int
        Pixel directions pushed through the network at once (memory vs speed).

    Returns
    -------
    dict
        ``{layer: (p, p) float64}``.
    """
    x0 = np.asarray(x0)
    if x0.ndim != 2 or x0.shape[0] != x0.shape[1]:
        raise ValueError(f"x0 must be one square stamp (S, S), got shape {x0.shape}")
    s = x0.shape[0]
    w = s if w is None else int(w)
    r0, c0 = (int(v) for v in origin)
    if not (1 <= w <= s and 0 <= r0 <= s - w and 0 <= c0 <= s - w):
        raise ValueError(f"window origin {origin} with side {w} does not fit a {s}x{s} stamp")
    G = np.asarray(G, np.float64).reshape(w * w, -1)
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        out = _layer_fisher(
            feature_fn,
            p64,
            jnp.asarray(x0, jnp.float64),
            jnp.asarray([r0, c0], jnp.int32),
            jnp.asarray(G),
            jnp.asarray(rcond, jnp.float64),
            w,
            min(chunk, w * w),
        )
        return {k: np.asarray(v) for k, v in out.items()}


# --------------------------------------------------------------------------- summaries


def _schur_diag(F: np.ndarray, scale: np.ndarray, shear: tuple[int, ...]) -> np.ndarray:
    """Effective information ``F_kk - F_ko F_oo^+ F_ok`` of components ``shear`` (..., 2)."""
    Fn = F * scale[..., :, None] * scale[..., None, :]  # dimensionless
    out = []
    for k in shear:
        o = [j for j in range(F.shape[-1]) if j != k]
        foo = Fn[..., o, :][..., :, o]
        fko = Fn[..., k, o]
        pinv = np.linalg.pinv(foo, rcond=SCHUR_RCOND, hermitian=True)
        eff = Fn[..., k, k] - np.einsum("...i,...ij,...j->...", fko, pinv, fko)
        out.append(eff / scale[..., k] ** 2)
    return np.stack(out, axis=-1)


def shear_information(
    F: np.ndarray,
    mode: str,
    *,
    reference: np.ndarray | None = None,
    prior_precision: np.ndarray | None = None,
) -> np.ndarray:
    """Effective Fisher information on g1 and g2 (..., 2): ``1 / [I^-1]_kk`` generalised.

    Parameters
    ----------
    F : array (..., 6, 6)
        Information matrices (:data:`PARAM_NAMES` order).
    mode : str
        ``"marginal"``: flux, centroid, size and the other shear component free;
        ``"prior"``: the same plus ``prior_precision`` (6,) added to the diagonal
        (Gaussian priors, 0 for free parameters); ``"fixed"``: only the (g1, g2) block.
    reference : array (..., 6, 6), optional
        Sets the parameter scaling of the pseudo-inverse (default ``F``); pass the
        image's information so that a layer and its image share one threshold.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    F = np.asarray(F, np.float64)
    if mode == "prior":
        if prior_precision is None:
            raise ValueError("mode 'prior' needs prior_precision (6,)")
        F = F + np.diag(np.asarray(prior_precision, np.float64))
        if reference is not None:
            reference = reference + np.diag(np.asarray(prior_precision, np.float64))
    ref = F if reference is None else np.asarray(reference, np.float64)
    d = np.diagonal(ref, axis1=-2, axis2=-1)
    scale = 1.0 / np.sqrt(np.where(d > 0, d, 1.0))
    if mode == "fixed":  # the (g1, g2) block alone
        return np.maximum(_schur_diag(F[..., 4:6, 4:6], scale[..., 4:6], (0, 1)), 0.0)
    return np.maximum(_schur_diag(F, scale, SHEAR), 0.0)


def retained_fraction(
    F_layer: np.ndarray, F_image: np.ndarray, mode: str, prior_precision: np.ndarray | None = None
) -> np.ndarray:
    """CRLB variance ratio ``[I_image^-1]_kk / [I_layer^-1]_kk`` per shear component (..., 2)."""
    F_image = np.broadcast_to(F_image, np.shape(F_layer))
    kw = {"prior_precision": prior_precision}
    eff_l = shear_information(F_layer, mode, reference=F_image, **kw)
    eff_i = shear_information(F_image, mode, reference=F_image, **kw)
    return eff_l / eff_i

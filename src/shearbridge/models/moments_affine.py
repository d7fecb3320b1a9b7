"""Adaptive moments plus an affine fit: ShapeNet's analytic part, with no network.

ShapeNet (:mod:`shearbridge.models.shapenet`) predicts ``(g1, g2)`` as a learnable affine map of
its PSF-deconvolved adaptive-moment shears (one per weight of
:data:`~shearbridge.models.moments.WEIGHT_FRACTIONS`) plus a learned correction. This model is
that affine map alone: six numbers per shear component at most (one scale per moment weight and
an offset), solved by least squares on the training stamps (:meth:`MomentsAffine.data_init`) and
never trained by gradient descent (its experiment runs zero epochs). It answers the question
"what does the network add to the analytic formula?" and is the fastest estimator of the study:
the bare moment layer.

It is a flax module so that it shares the training pipeline (the same training split, label
standardisation, checkpoint and evaluation), the estimator interface and the timing study with
the networks; the PSF sigma it deconvolves comes from the data, never a constant
(:func:`shearbridge.models.bind_data_kwargs`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.models.layers import LayerConfigError
from shearbridge.models.moments import MOMENT_KEYS, WEIGHT_FRACTIONS, moment_features

__all__ = ["MomentsAffine", "analytic_shears", "affine_lstsq", "affine_data_init"]


def analytic_shears(x: jax.Array, psf_sigma_px: float) -> jax.Array:
    """The adaptive-moment shears of stamps ``(B, S, S)``: ``(B, len(WEIGHT_FRACTIONS), 2)``."""
    feats = moment_features(x, psf_sigma_px)
    nk, i1, i2 = len(MOMENT_KEYS), MOMENT_KEYS.index("g1"), MOMENT_KEYS.index("g2")
    return jnp.stack(
        [feats[:, [k * nk + i1, k * nk + i2]] for k in range(len(WEIGHT_FRACTIONS))], axis=1
    )


def affine_lstsq(g: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``scale (n_weights, 2)`` and ``offset (2,)`` of
    ``targets[:, c] ~ sum_k scale[k, c] g[:, k, c] + offset[c]`` for each shear component ``c``;
    ``g`` is ``(N, n_weights, 2)`` (float64)."""
    g = np.asarray(g, np.float64)
    scale, offset = np.zeros((g.shape[1], 2)), np.zeros(2)
    for c in range(2):
        design = np.column_stack([g[:, :, c], np.ones(len(g))])
        coef, *_ = np.linalg.lstsq(design, np.asarray(targets[:, c], np.float64), rcond=None)
        scale[:, c], offset[c] = coef[:-1], coef[-1]
    return scale, offset


def affine_data_init(
    params: dict,
    images: np.ndarray,
    targets: np.ndarray,
    psf_sigma_px: float,
    batch_size: int = 1024,
) -> dict:
    """``params`` with ``g_scale``, ``g_offset`` set to :func:`affine_lstsq` of the analytic
    shears of ``images`` against ``targets`` (as the trainer sees them, i.e. standardised).
    Deterministic; other parameters are returned unchanged."""
    from shearbridge.models.predict import map_batches

    fn = jax.jit(lambda x: analytic_shears(x, psf_sigma_px))
    g = map_batches(fn, np.asarray(images, np.float32), batch_size).astype(np.float64)
    scale, offset = affine_lstsq(g, targets)
    new = dict(params)
    new["g_scale"] = jnp.asarray(scale, params["g_scale"].dtype)
    new["g_offset"] = jnp.asarray(offset, params["g_offset"].dtype)
    return new


class MomentsAffine(nn.Module):
    """``(g1, g2) = sum_k scale_k * g_analytic_k + offset`` (standardised label units).

    Attributes
    ----------
    n_outputs : int
        Must be 2: the model predicts the two shear components only.
    psf_sigma_px : float
        Gaussian PSF sigma of the data (pixels), from the dataset's simulation record.
    """

    n_outputs: int = 2
    psf_sigma_px: float | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.n_outputs != 2:
            raise LayerConfigError(
                f"MomentsAffine predicts (g1, g2) only: n_outputs must be 2, got {self.n_outputs}"
            )
        if not (self.psf_sigma_px is not None and self.psf_sigma_px > 0):
            raise LayerConfigError(
                f"MomentsAffine needs psf_sigma_px > 0 (pixels), got {self.psf_sigma_px!r}"
            )
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.ndim != 3 or x.shape[1] != x.shape[2]:
            raise ValueError(
                f"MomentsAffine expects stamps (B, S, S) or (B, S, S, 1), got {x.shape}"
            )
        g_an = analytic_shears(x, self.psf_sigma_px)  # (B, n_weights, 2)
        scale = self.param(
            "g_scale",
            nn.initializers.constant(1.0 / len(WEIGHT_FRACTIONS)),
            (len(WEIGHT_FRACTIONS), 2),
        )
        offset = self.param("g_offset", nn.initializers.zeros, (2,))
        return jnp.sum(g_an * scale, axis=1) + offset

    def data_init(
        self, params: dict, images: np.ndarray, targets: np.ndarray, batch_size: int = 1024
    ) -> dict:
        """The least-squares affine read-out on the training stamps (:func:`affine_data_init`)."""
        return affine_data_init(params, images, targets, self.psf_sigma_px, batch_size)

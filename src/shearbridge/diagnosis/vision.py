"""CNN vision: what EnhancedGalaxyNN looks at, next to what the maximum-likelihood estimator weighs.

Feature maps of one galaxy; the saliency ``d g1_hat / d x`` of the trained network next to
the maximum-likelihood estimator's weight map ``d g1_ML / d x = [(G^T G)^-1 G^T]_g1`` (all
six parameters free, white noise). A visual counterpart of the per-layer Fisher diagnosis
(:mod:`shearbridge.diagnosis.fisher`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.config import noise_tag
from shearbridge.models.enhanced import SPATIAL_LAYERS

__all__ = ["ml_weight_map", "pearson", "run_vision", "saliency"]


@functools.partial(jax.jit, static_argnames="model")
def _saliency(model: nn.Module, params: Any, x: jax.Array) -> jax.Array:
    return jax.grad(lambda img: model.apply({"params": params}, img[None])[0, 0])(x)


def saliency(trained: Any, x: np.ndarray) -> np.ndarray:
    """``d g1_hat / d x`` (S, S) of a trained network at stamp ``x``, g1 in label units."""
    grad = _saliency(trained.model, trained.params, jnp.asarray(x, jnp.float32))
    return np.asarray(grad, np.float64) * float(np.asarray(trained.label_std)[0])


def ml_weight_map(G: np.ndarray, k: int = 4) -> np.ndarray:
    """``d theta_k,ML / d x`` (S, S): row ``k`` of ``(G^T G)^-1 G^T`` for ``G`` (S, S, p)."""
    g = G.reshape(-1, G.shape[-1])
    return np.linalg.solve(g.T @ g, g.T)[k].reshape(G.shape[:2])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation coefficient of two maps over pixels."""
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def run_vision(
    trained: Mapping[float, Any],
    grid: tuple[float, ...],
    clean: np.ndarray,
    noise: np.ndarray,
    G_full: np.ndarray,
    n_vision: int,
    pick: int = 0,
    n_channels: int = 3,
) -> dict:
    """Saliency vs ML weight map (all noise levels) and feature maps (lowest-noise network).

    Per galaxy ``i < n_vision`` and noise level: ``corr_ml`` = Pearson(saliency,
    ML weight map); ``corr_template`` = Pearson(saliency, dI/dg1); ``response`` =
    ``sum(saliency * dI/dg1)`` (the linearised d g1_hat / d g1; 1 for an unbiased
    estimator); ``noise_ratio`` = ``|saliency| / |ML weight map|`` (the network's
    linear noise standard deviation over the CRLB's); ``efficiency`` =
    ``(response / noise_ratio)^2``, the CRLB variance over the network's linear noise
    variance once its response is calibrated to 1; it is <= 1 for a network blind to
    flux, centroid and size (as the ML estimator is) and can exceed 1 only by responding
    to them, i.e. at the price of a nuisance-dependent bias. Maps are
    stored for galaxy ``pick``.
    """
    n = min(n_vision, len(clean))
    keys = ("corr_ml", "corr_template", "response", "noise_ratio", "efficiency")
    stats = {key: np.zeros((len(grid), n)) for key in keys}
    sal_maps = []
    w_ml = [ml_weight_map(G_full[i]) for i in range(n)]
    for k, sigma in enumerate(grid):
        for i in range(n):
            x = clean[i] + sigma * noise[i]
            sal = saliency(trained[sigma], x)
            stats["corr_ml"][k, i] = pearson(sal, w_ml[i])
            stats["corr_template"][k, i] = pearson(sal, G_full[i, ..., 4])
            stats["response"][k, i] = float(np.sum(sal * G_full[i, ..., 4]))
            stats["noise_ratio"][k, i] = float(np.linalg.norm(sal) / np.linalg.norm(w_ml[i]))
            stats["efficiency"][k, i] = (stats["response"][k, i] / stats["noise_ratio"][k, i]) ** 2
            if i == pick:
                sal_maps.append(sal)
    low = trained[grid[0]]
    x = clean[pick] + grid[0] * noise[pick]
    f = low.model.apply(
        {"params": low.params}, jnp.asarray(x, jnp.float32)[None], return_features=True
    )
    arrays = {
        "vision_image": x,
        "vision_saliency": np.stack(sal_maps),
        "vision_ml_weight": w_ml[pick],
        "vision_template": G_full[pick, ..., 4],
    }
    half = len(SPATIAL_LAYERS) // 2
    for layers in (SPATIAL_LAYERS[:half], SPATIAL_LAYERS[half:]):  # conv, relu, pool of each block
        block = layers[1]  # channels ranked by their variance after the ReLU
        var = np.asarray(f[block][0]).var(axis=(0, 1))
        chans = np.sort(np.argsort(var)[::-1][:n_channels])
        for layer in layers:
            arrays[f"vision_fmap_{layer}"] = np.moveaxis(np.asarray(f[layer][0])[..., chans], -1, 0)
        arrays[f"vision_channels_{block}"] = chans
    arrays |= {f"vision_{key}": v for key, v in stats.items()}
    summary = {
        noise_tag(s): {
            key: {
                "mean": float(v[k].mean()),
                "std": float(v[k].std()),
                "median": float(np.median(v[k])),
            }
            for key, v in stats.items()
        }
        for k, s in enumerate(grid)
    } | {"n_galaxies": n, "galaxy_index": pick, "saliency_units": "g1 per image unit"}
    return {"summary": summary, "arrays": arrays}

"""What the per-layer Fisher diagnosis sees of a network: its layers, for one stamp.

A feature function ``(params, image (S, S), window origin) -> {layer: activations}``
(:data:`~shearbridge.diagnosis.fisher.FeatureFn`) is what
:func:`~shearbridge.diagnosis.fisher.layer_fisher` linearises. :func:`feature_fn_for`
returns it, with the analysed layers, for either supported network:
EnhancedGalaxyNN (:func:`enhanced_feature_fn`, layers :data:`LAYERS`) or ShapeNet
(:mod:`shearbridge.diagnosis.shapenet_features`).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from shearbridge.diagnosis.fisher import FeatureFn
from shearbridge.diagnosis.shapenet_features import shapenet_feature_fn, shapenet_layers
from shearbridge.models.enhanced import FEATURE_NAMES, EnhancedGalaxyNN
from shearbridge.models.shapenet import ShapeNet

__all__ = ["LAYERS", "enhanced_feature_fn", "feature_fn_for"]

#: Layers of EnhancedGalaxyNN analysed: the input and every feature of the model but
#: ``flatten`` (which equals ``pool2``).
LAYERS = ("input", *(k for k in FEATURE_NAMES if k != "flatten"))


def _crop(a: jax.Array, r: jax.Array, c: jax.Array, size: int) -> jax.Array:
    """``a[r:r+size, c:c+size]`` of an (H, W, C) map; starts are clamped into the map."""
    size = min(size, a.shape[0])
    return jax.lax.dynamic_slice(a, (r, c, jnp.zeros_like(r)), (size, size, a.shape[-1]))


@functools.lru_cache(maxsize=32)
def enhanced_feature_fn(model: nn.Module, w: int) -> FeatureFn:
    """Feature function of EnhancedGalaxyNN for a ``w x w`` window, spatial maps cropped.

    A pixel of the window can only move the units whose receptive field covers it:
    rows ``[r0-1, r0+w]`` of conv1/relu1 (3x3 SAME), ``[a//2, b//2]`` after each 2x2
    VALID pooling of rows ``[a, b]``, one more row each side after conv2. Each map is
    cropped to a conservative box of that region (fixed size, so one compilation serves
    every window position), which leaves the information unchanged and cuts the cost
    several-fold. ``"input"`` is the window itself (information ratio 1 by definition).
    Returns every layer of :data:`LAYERS`.
    """
    s1 = w + 2
    sp1 = s1 // 2 + 1
    s2 = sp1 + 2
    sp2 = s2 // 2 + 1

    def features(params: Any, x: jax.Array, origin: jax.Array) -> dict[str, jax.Array]:
        f = model.apply({"params": params}, x[None], return_features=True)
        r, c = origin[0], origin[1]
        a1r, a1c = r - 1, c - 1
        ap1r, ap1c = a1r // 2, a1c // 2
        a2r, a2c = ap1r - 1, ap1c - 1
        ap2r, ap2c = a2r // 2, a2c // 2
        return {
            "input": jax.lax.dynamic_slice(x, (r, c), (w, w)),
            "conv1": _crop(f["conv1"][0], a1r, a1c, s1),
            "relu1": _crop(f["relu1"][0], a1r, a1c, s1),
            "pool1": _crop(f["pool1"][0], ap1r, ap1c, sp1),
            "conv2": _crop(f["conv2"][0], a2r, a2c, s2),
            "relu2": _crop(f["relu2"][0], a2r, a2c, s2),
            "pool2": _crop(f["pool2"][0], ap2r, ap2c, sp2),
            "dense1": f["dense1"][0],
            "relu3": f["relu3"][0],
            "out": f["out"][0],
        }

    return features


def feature_fn_for(model: nn.Module, w: int) -> tuple[FeatureFn, tuple[str, ...]]:
    """(feature function, analysed layers) of a supported network (EnhancedGalaxyNN or ShapeNet)."""
    if isinstance(model, EnhancedGalaxyNN):
        return enhanced_feature_fn(model, w), LAYERS
    if isinstance(model, ShapeNet):  # lists from a saved model's JSON meta -> tuples (hashable)
        model = model.clone(
            **{k: tuple(getattr(model, k)) for k in ("channels", "dilations", "moment_scales_px")}
        )
        return shapenet_feature_fn(model, w), shapenet_layers(model)
    raise ValueError(
        f"no per-layer diagnosis for {type(model).__name__}; supported: EnhancedGalaxyNN, ShapeNet"
    )

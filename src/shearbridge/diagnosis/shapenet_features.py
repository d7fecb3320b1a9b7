"""Per-layer Fisher information of ShapeNet: which stages the diagnosis analyses.

The diagnosis is :mod:`shearbridge.diagnosis.fisher`. :func:`shapenet_layers` names the stages of a
:class:`~shearbridge.models.shapenet.ShapeNet` (they depend on its switches) and
:func:`shapenet_feature_fn` returns them for one stamp in the form
:func:`shearbridge.diagnosis.fisher.layer_fisher` expects.

ShapeNet stops gradients through its adaptive-moment features
(:func:`shearbridge.models.moments.moment_features`; a training device). The information carried
by a layer is about the network as a function of the pixels, so the feature function
traces the model with the stop lifted (:func:`_without_stop_gradient`: identical values,
true derivatives); otherwise every layer downstream of the moments would
look blind to the analytic shear.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax

from shearbridge.diagnosis.fisher import FeatureFn

__all__ = ["shapenet_layers", "shapenet_feature_fn"]


@contextlib.contextmanager
def _without_stop_gradient() -> Iterator[None]:
    """While tracing ShapeNet, make ``jax.lax.stop_gradient`` the identity (values unchanged).

    Every stop-gradient in the model is a training device (the moment features); lifting
    them all keeps this independent of how :mod:`shearbridge.models.moments` is written.
    """
    original = jax.lax.stop_gradient
    jax.lax.stop_gradient = lambda x: x
    try:
        yield
    finally:
        jax.lax.stop_gradient = original


def shapenet_layers(model: nn.Module) -> tuple[str, ...]:
    """Analysed stages of a :class:`~shearbridge.models.shapenet.ShapeNet`.

    Its switches decide which. ``input`` is the raw window; ``normed`` the flux-normalised stamp
    (``input_norm``); ``conv``/``act``/``pool`` per block (no ``pool`` when ``pool='none'``);
    ``attention``; ``moments`` the analytic adaptive-moment features; ``pooled`` the head's input
    (moment pooling or flatten, plus the extra features); ``dense1..``; ``out``.
    """
    layers = ["input"] + (["normed"] if model.input_norm else [])
    for i in range(1, len(model.channels) + 1):
        layers += [f"conv{i}", f"act{i}"] + ([f"pool{i}"] if model.pool != "none" else [])
    layers += (["attention"] if model.attention else []) + (["moments"] if model.moments else [])
    layers += ["pooled", *(f"dense{j}" for j in range(1, model.head_layers + 1)), "out"]
    return tuple(layers)


@functools.lru_cache(maxsize=32)
def shapenet_feature_fn(model: nn.Module, w: int) -> FeatureFn:
    """Feature function of ShapeNet for a ``w x w`` window, maps uncropped.

    The maps are those of :func:`shapenet_layers`. Unlike
    :func:`shearbridge.diagnosis.features.enhanced_feature_fn` the maps are not cropped to the
    window's receptive field (BlurPool's reflect padding and the stamp-wide flux normalisation
    and moment features make every map depend on every pixel), so each call costs several
    times more.
    ``model`` must be hashable (sequence attributes as tuples).
    """
    layers = shapenet_layers(model)

    def features(params: Any, x: jax.Array, origin: jax.Array) -> dict[str, jax.Array]:
        with _without_stop_gradient():
            f = model.apply({"params": params}, x[None], return_features=True)
        out = {"input": jax.lax.dynamic_slice(x, (origin[0], origin[1]), (w, w))}
        for k in layers[1:]:
            out[k] = f["input" if k == "normed" else k][0]
        return out

    return features

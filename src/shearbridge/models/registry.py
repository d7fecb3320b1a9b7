"""Networks by name: the model registry.

A model is a ``flax.linen.Module`` whose ``__call__(x)`` maps stamps of shape
(B, S, S) to predictions of shape (B, n_outputs), and that accepts an
``n_outputs`` attribute. New models plug in by adding a line to
``_BUILTIN`` (``"name": "module:Class"``, imported lazily), by calling
:func:`register_model` at run time, or by naming them ``"package.module:Class"`` in an
experiment's ``TrainConfig.model`` (a new network then needs no edit here). What a model must
be told about its data (the PSF) comes from the dataset's simulation record
(:func:`bind_data_kwargs`).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.config import ConfigError

__all__ = [
    "get_model",
    "register_model",
    "model_names",
    "bind_data_kwargs",
    "count_params",
    "init_params",
    "feature_shapes",
]

# name -> "module path:attribute" (relative to this package), imported on first use
_BUILTIN: dict[str, str] = {
    "enhanced": ".enhanced:EnhancedGalaxyNN",
    "shapenet": ".shapenet:ShapeNet",
    "moments_affine": ".moments_affine:MomentsAffine",
}
_REGISTERED: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    """Make ``factory(n_outputs=..., **kwargs)`` available as ``get_model(name, ...)``."""
    if name in _BUILTIN or name in _REGISTERED:
        raise ConfigError(f"model name {name!r} is already taken")
    _REGISTERED[name] = factory


def model_names() -> list[str]:
    """Every known model name."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def _factory(name: str) -> Callable[..., nn.Module]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN or ":" in name:  # a built-in name, or "package.module:Class"
        module_name, attr = _BUILTIN.get(name, name).split(":", 1)
        try:
            return getattr(importlib.import_module(module_name, "shearbridge.models"), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"model {name!r} cannot be imported: {exc}") from None
    raise ConfigError(f"unknown model {name!r}; known: {model_names()} (or 'package.module:Class')")


def get_model(name: str, n_outputs: int, **kwargs: Any) -> nn.Module:
    """The model called ``name`` with ``n_outputs`` linear outputs.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the known ones) or keyword arguments
        the model does not accept.
    """
    factory = _factory(name)
    # lists (from JSON configs) become tuples: a hashable module is jitted once and reused
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    try:
        return factory(n_outputs=n_outputs, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad model_kwargs {sorted(kwargs)}: {exc}") from None


def bind_data_kwargs(name: str, kwargs: Mapping[str, Any], sim: Any) -> dict[str, Any]:
    """``kwargs`` plus what model ``name`` must be told about its data, from the dataset's
    simulation record ``sim`` (:class:`shearbridge.config.SimConfig`): a model with a
    ``psf_sigma_px`` field gets the data's PSF sigma in pixels unless ``kwargs`` sets it."""
    kwargs = dict(kwargs)
    factory = _factory(name)
    fields = (
        {f.name for f in dataclasses.fields(factory)}
        if dataclasses.is_dataclass(factory)
        else set()
    )
    if "psf_sigma_px" in fields and kwargs.get("psf_sigma_px") is None:
        if sim is None:
            raise ConfigError(
                f"model {name!r} needs the PSF of its data: no simulation record was given"
            )
        kwargs["psf_sigma_px"] = float(sim.psf_sigma_px)
    return kwargs


def count_params(params: Any) -> int:
    """Total number of scalar parameters in a pytree of arrays."""
    return int(
        sum(np.prod(np.shape(leaf), dtype=np.int64) for leaf in jax.tree_util.tree_leaves(params))
    )


def init_params(model: nn.Module, key: jax.Array, stamp_size: int) -> Any:
    """Fresh parameters of ``model`` for (S, S) stamps, from one jitted ``model.init``.

    Same values as the eager ``model.init(key, zeros((1, S, S)))["params"]`` up to
    round-off; measured about 15 s faster for ShapeNet on one CPU core, because eager
    initialisation compiles every primitive on its own.
    """
    x = jnp.zeros((1, stamp_size, stamp_size), jnp.float32)
    return jax.jit(model.init)(key, x)["params"]


def feature_shapes(model: nn.Module, stamp_size: int) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """Fresh parameters of ``model`` (key 0) and the shape of every stage's output for one
    (S, S) stamp, batch axis dropped: what the paper's architecture table reads off the model.
    The model must accept ``return_features=True``."""
    x = jnp.zeros((1, stamp_size, stamp_size), jnp.float32)
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    feats = model.apply({"params": params}, x, return_features=True)
    return params, {k: tuple(np.shape(v)[1:]) for k, v in feats.items()}

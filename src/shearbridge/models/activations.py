"""The activation functions of this study, in JAX and as independent NumPy formulas.

JAX side: ``jax.nn`` (what Flax models call). NumPy side: written from the
textbook definitions, in float64, with derivatives derived by hand (not by
autodiff), so a match is a real check of the translation.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "NAMES",
    "LEAKY_SLOPE",
    "jax_activation",
    "jax_derivative",
    "numpy_activation",
    "numpy_derivative",
    "max_abs_difference",
]

LEAKY_SLOPE = 0.01  # jax.nn.leaky_relu's default negative slope
NAMES = ("relu", "leaky_relu", "elu", "gelu", "silu", "mish")


def _erf(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return erf(x)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _gelu(x: np.ndarray) -> np.ndarray:  # exact GELU: x * Phi(x)
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _dgelu(x: np.ndarray) -> np.ndarray:  # Phi(x) + x phi(x)
    return 0.5 * (1.0 + _erf(x / np.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)


def _mish(x: np.ndarray) -> np.ndarray:  # x tanh(softplus(x))
    return x * np.tanh(_softplus(x))


def _dmish(x: np.ndarray) -> np.ndarray:
    t = np.tanh(_softplus(x))
    return t + x * (1.0 - t * t) * _sigmoid(x)


_NUMPY: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(x.dtype)),
    "leaky_relu": (
        lambda x: np.where(x >= 0, x, LEAKY_SLOPE * x),
        lambda x: np.where(x >= 0, 1.0, LEAKY_SLOPE),
    ),
    "elu": (
        lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
        lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0))),
    ),
    "gelu": (_gelu, _dgelu),
    "silu": (lambda x: x * _sigmoid(x), lambda x: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x)))),
    "mish": (_mish, _dmish),
}


def _check(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown activation {name!r}; known: {NAMES}")


def jax_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The ``jax.nn`` function used by the Flax models (GELU is the exact, erf form)."""
    _check(name)
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    if name == "mish":
        return lambda x: jax.nn.mish(x)
    return getattr(jax.nn, name)


def jax_derivative(name: str) -> Callable[[jax.Array], jax.Array]:
    """Elementwise derivative by autodiff (``vmap(grad(f))``)."""
    f = jax_activation(name)
    return jax.vmap(jax.grad(lambda v: f(v)))


def numpy_activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    _check(name)
    return _NUMPY[name][0]


def numpy_derivative(name: str) -> Callable[[np.ndarray], np.ndarray]:
    _check(name)
    return _NUMPY[name][1]


def max_abs_difference(name: str, x: np.ndarray) -> tuple[float, float]:
    """Largest |JAX - NumPy| of the function and of its derivative at points ``x`` (float32 JAX)."""
    xj = jnp.asarray(x, dtype=jnp.float32)
    x64 = np.asarray(xj, dtype=np.float64)  # compare at the float32 points JAX saw
    f_err = np.max(
        np.abs(np.asarray(jax_activation(name)(xj), np.float64) - numpy_activation(name)(x64))
    )
    d_err = np.max(
        np.abs(np.asarray(jax_derivative(name)(xj), np.float64) - numpy_derivative(name)(x64))
    )
    return float(f_err), float(d_err)

"""The six activations: jax.nn (float32) against independent NumPy formulas (float64).

Tolerance (see :mod:`shearbridge.models.parity`): on |x| <= 8 each JAX expression
has at most 8 float32 operations (16 for its autodiff derivative), each with a
relative error of at most 4u (u = 2**-24; XLA's transcendental functions are
accurate to a few ulp) on intermediates bounded by max(1, |x|), so
|f_jax - f_ref| <= 32 u max(1, |x|) and |f'_jax - f'_ref| <= 64 u max(1, |x|).
The NumPy side is evaluated in float64 at the float32 points JAX saw.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from shearbridge.models import activations as act
from shearbridge.models import numpy_ref
from shearbridge.models.parity import activation_points, activation_tolerance


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    return activation_points(np.random.default_rng(np.random.SeedSequence(11)))


@pytest.mark.parametrize("name", act.NAMES)
@pytest.mark.parametrize("kind", ["function", "derivative"])
def test_jax_matches_numpy_within_float32_bound(name, kind, points):
    x64 = points.astype(np.float64)
    if kind == "function":
        got, want = act.jax_activation(name)(jnp.asarray(points)), act.numpy_activation(name)(x64)
    else:
        got, want = act.jax_derivative(name)(jnp.asarray(points)), act.numpy_derivative(name)(x64)
    err = np.abs(np.asarray(got, np.float64) - want) / np.maximum(1.0, np.abs(x64))
    tol = activation_tolerance(kind)
    i = int(np.argmax(err))
    assert err[i] <= tol, (
        f"{name} {kind}: |jax - numpy| / max(1,|x|) = {err[i]:.3g} > {tol:.3g} at x = {points[i]}"
    )


@pytest.mark.parametrize("name", act.NAMES)
def test_max_abs_difference_reports_both_errors(name, points):
    # the pointwise bound tol * max(1, |x|) with |x| <= 8 caps the maximum at 8 * tol
    f_err, d_err = act.max_abs_difference(name, points)
    bound = 8.0 * np.array([activation_tolerance("function"), activation_tolerance("derivative")])
    assert np.all(np.array([f_err, d_err]) <= bound)


@pytest.mark.parametrize("name", act.NAMES)
def test_hand_derivatives_match_central_differences(name):
    # float64 central difference, h = 1e-5: truncation h^2 |f'''| / 6 < 1e-10 (|f'''| < 2 here),
    # round-off ~ eps64 |f| / h < 2e-10 for |f| <= 8; kinks at 0 are excluded.
    x = np.linspace(-8.0, 8.0, 1601)
    x = x[np.abs(x) > 1e-3]
    h = 1e-5
    f = act.numpy_activation(name)
    fd = (f(x + h) - f(x - h)) / (2 * h)
    assert_allclose(act.numpy_derivative(name)(x), fd, rtol=0, atol=1e-9, err_msg=name)


KNOWN = [
    ("relu", "function", -1.0, 0.0),
    ("relu", "function", 2.5, 2.5),
    ("leaky_relu", "function", -2.0, -2.0 * act.LEAKY_SLOPE),
    ("elu", "function", 0.0, 0.0),
    ("elu", "derivative", 0.0, 1.0),
    ("gelu", "function", 0.0, 0.0),
    ("gelu", "derivative", 0.0, 0.5),
    ("silu", "function", 0.0, 0.0),
    ("silu", "derivative", 0.0, 0.5),
    ("mish", "function", 0.0, 0.0),
    ("mish", "derivative", 0.0, np.tanh(np.log(2.0))),  # tanh(softplus(0)) = 0.6
]


@pytest.mark.parametrize("name, kind, x, expected", KNOWN)
def test_known_values(name, kind, x, expected):
    np_fun = act.numpy_activation(name) if kind == "function" else act.numpy_derivative(name)
    jx_fun = act.jax_activation(name) if kind == "function" else act.jax_derivative(name)
    assert_allclose(np_fun(np.array([x])), [expected], rtol=0, atol=1e-15)
    got = np.asarray(jx_fun(jnp.array([x], jnp.float32)))
    assert_allclose(got, [expected], rtol=0, atol=2**-23)  # float32 value within one eps32


def test_numpy_ref_reexports_activations():
    assert numpy_ref.numpy_activation is act.numpy_activation
    assert numpy_ref.ACTIVATION_NAMES == act.NAMES


def test_unknown_activation_raises():
    with pytest.raises(ValueError, match="unknown activation"):
        act.numpy_activation("swish2")

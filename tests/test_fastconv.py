""":mod:`shearbridge.models.fastconv` computes what ``flax.linen`` computes.

It does so with the same parameters.

Two kinds of check. On *dyadic* inputs (values k/8 with small k) every product
and partial sum is exact in float32, so any summation order gives the same
bits: results must be identical. On Gaussian inputs the two float32
implementations may differ by round-off only, bounded (Higham) by
``2 gamma_n`` times the same quantity computed with absolute values, where n is
the number of terms summed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_array_equal

from shearbridge.models import fastconv as fc
from shearbridge.train import runtime as rt
from shearbridge.models.parity import gamma


def _dyadic(seed: int, shape: tuple[int, ...], bound: int = 4, denom: int = 8) -> jnp.ndarray:
    rng = np.random.default_rng(seed)
    return jnp.asarray((rng.integers(-bound, bound + 1, size=shape) / denom).astype(np.float32))


def _gauss(seed: int, shape: tuple[int, ...]) -> jnp.ndarray:
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def _abs_params(params):
    return jax.tree.map(jnp.abs, params)


def _both(mod_a: nn.Module, mod_b: nn.Module, params_a, params_b, x, g, init_modules=None):
    """Outputs and gradients of sum(out * g) (w.r.t. parameters and input) of two modules.

    With ``init_modules=(m1, m2)`` also their ``init`` (key 0) on ``x``. One compiled
    program per call (compilation, not arithmetic, is what costs here); arrays are
    arguments, not constants, so XLA cannot fold the computation away.
    """

    def one(module, params, u, h):
        y, vjp = jax.vjp(module.apply, params, u)
        return y, vjp(h)

    def both(pa, pb, u, h, key):
        out = (one(mod_a, pa, u, h), one(mod_b, pb, u, h))
        return out if init_modules is None else (*out, [m.init(key, u) for m in init_modules])

    return jax.jit(both)(params_a, params_b, x, g, jax.random.key(0))


def _assert_within(a, b, bound, what: str) -> None:
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    excess = diff - np.asarray(bound, np.float64)
    assert np.all(excess <= 0), (
        f"{what}: |diff| exceeds the round-off bound by up to {excess.max():.3g}"
    )


# -------------------------------------------------------------------- PatchConv == nn.Conv

CASES = [  # (kernel, padding, c_in, c_out, strides)
    (1, "SAME", 1, 4, 1),
    (3, "SAME", 1, 16, 1),
    (3, "VALID", 5, 2, 1),
    (5, "SAME", 2, 3, 1),
    (5, "VALID", 4, 6, 1),
    (3, "SAME", 3, 4, 2),
    (4, "SAME", 2, 3, 1),  # even kernel: asymmetric SAME padding (1 low, 2 high)
    (3, ((2, 0), (1, 1)), 2, 3, 1),
]


def _conv_pair(k, padding, cin, cout, strides, draw, seeds, x_shape):
    """PatchConv and nn.Conv of one geometry, shared parameters, an input and the output shape."""
    x = draw(seeds[0], (*x_shape, cin))
    ref = nn.Conv(cout, (k, k), strides=strides, padding=padding)
    pc = fc.PatchConv(cout, (k, k), strides=strides, padding=padding)
    params = {
        "params": {"kernel": draw(seeds[1], (k, k, cin, cout)), "bias": draw(seeds[2], (cout,))}
    }
    return pc, ref, params, x, jax.eval_shape(ref.apply, params, x).shape


@pytest.mark.pipeline
@pytest.mark.parametrize("k,padding,cin,cout,strides", CASES)
def test_patchconv_matches_nn_conv_exactly_on_dyadic_inputs(k, padding, cin, cout, strides):
    pc, ref, params, x, y_shape = _conv_pair(
        k, padding, cin, cout, strides, _dyadic, (1, 2, 3), (2, 11, 10)
    )
    (y_pc, d_pc), (y_ref, d_ref), inits = _both(
        pc, ref, params, params, x, _dyadic(4, y_shape), (pc, ref)
    )
    jax.tree.map(assert_array_equal, *inits)  # same names, shapes, initialisers and RNG streams
    assert y_pc.shape == y_ref.shape
    assert_array_equal(y_pc, y_ref)
    for u, v in zip(jax.tree.leaves(d_pc), jax.tree.leaves(d_ref)):
        assert_array_equal(u, v)


@pytest.mark.pipeline
@pytest.mark.parametrize("k,padding,cin,cout,strides", [CASES[1], CASES[3], CASES[5]])
def test_patchconv_matches_nn_conv_to_round_off_on_gaussian_inputs(k, padding, cin, cout, strides):
    pc, ref, params, x, y_shape = _conv_pair(
        k, padding, cin, cout, strides, _gauss, (5, 6, 7), (2, 12, 9)
    )
    g = _gauss(8, y_shape)
    (y_pc, (dp_pc, dx_pc)), (y_ref, (dp_ref, dx_ref)) = _both(pc, ref, params, params, x, g)
    # the same computation on absolute values bounds every sum's round-off (Higham)
    abs_in = (_abs_params(params), jnp.abs(x), jnp.abs(g))
    (y_abs, (dp_abs, dx_abs)), _ = _both(ref, ref, abs_in[0], abs_in[0], abs_in[1], abs_in[2])
    _assert_within(
        y_pc, y_ref, 2 * gamma(k * k * cin + 1) * y_abs, "output"
    )  # k*k*cin products + bias
    n_pix = int(np.prod(y_shape[:3]))  # kernel and bias gradients sum over batch and pixels
    for name in ("kernel", "bias"):
        _assert_within(
            dp_pc["params"][name],
            dp_ref["params"][name],
            2 * gamma(n_pix) * dp_abs["params"][name],
            name,
        )
    _assert_within(dx_pc, dx_ref, 2 * gamma(k * k * cout) * dx_abs, "input gradient")


@pytest.mark.pipeline
def test_patchconv_keeps_leading_batch_dimensions():
    x = _dyadic(9, (2, 3, 7, 7, 2))
    pc = fc.PatchConv(3, 3)
    params = {"params": {"kernel": _dyadic(27, (3, 3, 2, 3)), "bias": _dyadic(28, (3,))}}
    y, y1 = jax.jit(lambda p, u: (pc.apply(p, u), pc.apply(p, u[1, 2])))(params, x)
    assert y.shape == (2, 3, 7, 7, 3)
    assert_array_equal(y[1, 2], y1)  # a single (H, W, C) image works too


@pytest.mark.parametrize(
    "kwargs,x_shape,match",
    [
        ({"features": 2, "padding": "CIRCULAR"}, (1, 5, 5, 1), "padding"),
        ({"features": 2, "kernel_size": (0, 3)}, (1, 5, 5, 1), "kernel_size"),
        ({"features": 2, "kernel_size": 7, "padding": "VALID"}, (1, 5, 5, 1), "does not fit"),
        ({"features": 2}, (5, 5), "at least 3 dims"),
    ],
)
@pytest.mark.pipeline
def test_patchconv_misuse_raises(kwargs, x_shape, match):
    with pytest.raises(fc.FastConvError, match=match):
        fc.PatchConv(**kwargs).init(jax.random.key(0), jnp.zeros(x_shape))


# -------------------------------------------------------------- ConvReluAvgPool == conv, act, pool


class _ConvActPool(nn.Module):
    """The three flax layers ConvReluAvgPool replaces (parameters under ``conv``)."""

    features: int
    kernel_size: int
    padding: str
    activation: object = nn.relu

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        y = self.activation(nn.Conv(self.features, (k, k), padding=self.padding, name="conv")(x))
        return nn.avg_pool(y, (2, 2), strides=(2, 2), padding="VALID")


POOL_CASES = [  # (kernel, padding, c_in, c_out, H, W)
    (3, "SAME", 1, 16, 13, 13),  # one input channel, odd size (last row/column dropped by the pool)
    (3, "SAME", 4, 6, 10, 12),
    (3, "VALID", 2, 3, 11, 10),
    (1, "SAME", 3, 5, 8, 9),
    (5, "SAME", 2, 4, 9, 12),
    (5, "VALID", 1, 2, 12, 11),
]


@pytest.mark.pipeline
@pytest.mark.parametrize("k,padding,cin,cout,h,w", POOL_CASES)
def test_conv_relu_avgpool_matches_the_three_flax_layers_exactly_on_dyadic_inputs(
    k, padding, cin, cout, h, w
):
    x = _dyadic(10, (2, h, w, cin))
    fused = fc.ConvReluAvgPool(cout, k, padding=padding)
    ref = _ConvActPool(cout, k, padding)
    conv = nn.Conv(cout, (k, k), padding=padding)
    params = {"kernel": _dyadic(11, (k, k, cin, cout)), "bias": _dyadic(12, (cout,))}
    p_fused, p_ref = {"params": params}, {"params": {"conv": params}}
    y_shape = jax.eval_shape(ref.apply, p_ref, x).shape
    # exact inputs make z == 0 common: ReLU's derivative there is a convention, 0 in both
    g = _dyadic(13, y_shape)
    (y, (dp, dx)), (y_ref, (dp_ref, dx_ref)), inits = _both(
        fused, ref, p_fused, p_ref, x, g, (fused, conv)
    )
    jax.tree.map(assert_array_equal, *inits)  # nn.Conv's parameters
    assert y.shape == y_ref.shape
    assert_array_equal(y, y_ref)
    for name in ("kernel", "bias"):
        assert_array_equal(dp["params"][name], dp_ref["params"]["conv"][name])
    assert_array_equal(dx, dx_ref)


@pytest.mark.pipeline
@pytest.mark.parametrize("k,padding,cin,cout,h,w", POOL_CASES[:3:2])
def test_conv_relu_avgpool_matches_to_round_off_on_gaussian_inputs(k, padding, cin, cout, h, w):
    x = _gauss(14, (2, h, w, cin))
    fused, ref = fc.ConvReluAvgPool(cout, k, padding=padding), _ConvActPool(cout, k, padding)
    conv = nn.Conv(cout, (k, k), padding=padding)
    params = {"kernel": _gauss(15, (k, k, cin, cout)), "bias": _gauss(16, (cout,))}
    p_fused, p_ref = {"params": params}, {"params": {"conv": params}}
    y_shape = jax.eval_shape(ref.apply, p_ref, x).shape
    g = _gauss(17, y_shape)
    (y, (dp, dx)), (y_ref, (dp_ref, dx_ref)) = _both(fused, ref, p_fused, p_ref, x, g)
    abs_params = _abs_params(p_ref)
    (_, (dp_abs, dx_abs)), _ = _both(ref, ref, abs_params, abs_params, jnp.abs(x), jnp.abs(g))
    z, z_abs = jax.jit(lambda p, u: (conv.apply(p, u), conv.apply(_abs_params(p), jnp.abs(u))))(
        p_fused, x
    )
    # |dz| <= gamma_n (conv(|x|, |w|) + |b|) (zero entries of the space-to-depth kernel add
    # exactly); ReLU is 1-Lipschitz and the 4-term mean adds a few roundings (the +4)
    z_bound = 2 * gamma(k * k * cin + 1 + 4) * z_abs
    # where |z| exceeds its round-off bound both ReLU masks agree, so gradients differ by
    # summation round-off only; these seeds keep every pre-activation clear of the kink
    assert bool(jnp.all(jnp.abs(z) > z_bound)), (
        "a pre-activation lies within round-off of the ReLU kink"
    )
    _assert_within(
        y, y_ref, nn.avg_pool(z_bound, (2, 2), strides=(2, 2), padding="VALID"), "output"
    )
    n = 4 * int(np.prod(y_shape[:3])) + 4  # kernel and bias gradients: 4 phases per pooled pixel
    for name in ("kernel", "bias"):
        _assert_within(
            dp["params"][name],
            dp_ref["params"]["conv"][name],
            2 * gamma(n) * dp_abs["params"]["conv"][name],
            name,
        )
    _assert_within(dx, dx_ref, 2 * gamma(k * k * cout + 4) * dx_abs, "input gradient")


@pytest.mark.pipeline
def test_conv_relu_avgpool_takes_any_elementwise_activation():
    x = _gauss(23, (2, 9, 9, 2))
    fused = fc.ConvReluAvgPool(3, 3, activation=nn.softplus)
    ref = _ConvActPool(3, 3, "SAME", nn.softplus)
    params = {"kernel": _gauss(24, (3, 3, 2, 3)), "bias": _gauss(25, (3,))}
    (y, _), (y_ref, _) = _both(
        fused, ref, {"params": params}, {"params": {"conv": params}}, x, jnp.ones((2, 4, 4, 3))
    )
    z_abs = nn.Conv(3, (3, 3)).apply({"params": _abs_params(params)}, jnp.abs(x))
    # softplus is 1-Lipschitz; its own evaluation adds a few ulp of its value (<= |z| + log 2)
    bound = nn.avg_pool(
        2 * gamma(9 * 2 + 1 + 8) * (z_abs + 1.0), (2, 2), strides=(2, 2), padding="VALID"
    )
    _assert_within(y, y_ref, bound, "softplus output")


@pytest.mark.parametrize(
    "kwargs,x_shape,match",
    [
        ({"features": 2, "kernel_size": 4}, (1, 8, 8, 1), "odd"),
        ({"features": 2, "padding": "FULL"}, (1, 8, 8, 1), "padding"),
        ({"features": 2, "kernel_size": 5, "padding": "VALID"}, (1, 5, 5, 1), "too small"),
    ],
)
@pytest.mark.pipeline
def test_conv_relu_avgpool_misuse_raises(kwargs, x_shape, match):
    with pytest.raises(fc.FastConvError, match=match):
        fc.ConvReluAvgPool(**kwargs).init(jax.random.key(0), jnp.zeros(x_shape))


@pytest.mark.pipeline
def test_space_to_depth_kernel_entries_follow_the_definition():
    k, c, f = 3, 2, 3
    kernel = _gauss(18, (k, k, c, f))
    w = np.asarray(fc.space_to_depth_kernel(kernel)).reshape(
        2, 2, 2, 2, c, 2, 2, f
    )  # u v a b c pa pb f
    kern = np.asarray(kernel)
    for u, v, a, b, pa, pb in np.ndindex(2, 2, 2, 2, 2, 2):
        i, j = 2 * u + a - pa, 2 * v + b - pb
        want = kern[i, j] if 0 <= i < k and 0 <= j < k else np.zeros((c, f), np.float32)
        assert_array_equal(
            w[u, v, a, b, :, pa, pb, :], want, err_msg=f"u={u} v={v} a={a} b={b} pa={pa} pb={pb}"
        )


# ------------------------------------------------------------------------------- helpers


@pytest.mark.pipeline
@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (3, 53, 53, 2), (1, 7, 6, 1)])
def test_avg_pool2_equals_flax_avg_pool(shape):
    y = _gauss(19, shape)
    ref = nn.avg_pool(y, (2, 2), strides=(2, 2), padding="VALID")
    out = fc.avg_pool2(y)
    assert out.shape == ref.shape
    # a mean of 4 float32 values: at most 2 roundings of 2 u each relative to the sum of |y|
    bound = 4 * gamma(1) * nn.avg_pool(jnp.abs(y), (2, 2), strides=(2, 2), padding="VALID")
    _assert_within(out, ref, bound, "avg_pool2")


def test_gather_batch_equals_fancy_indexing_under_jit():
    data = _gauss(20, (10, 4, 4))
    idx = jnp.array([3, 0, 9, 3], jnp.int32)
    assert_array_equal(jax.jit(fc.gather_batch)(data, idx), data[idx])


def test_recommended_flags_extend_and_never_duplicate():
    flags = rt.recommended_xla_flags("--xla_cpu_enable_fast_math=false")
    assert flags.startswith("--xla_cpu_enable_fast_math=false ")
    assert "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution" in flags
    assert rt.recommended_xla_flags(flags) == flags  # idempotent
    mine = "--xla_cpu_experimental_ynn_fusion_type=-reduce"
    assert rt.recommended_xla_flags(mine) == mine  # a user's own setting wins
    env = rt.recommended_env({"MALLOC_MMAP_MAX_": "65536", "XLA_FLAGS": ""})
    assert "MALLOC_MMAP_MAX_" not in env and env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    assert env["XLA_FLAGS"] == rt.recommended_xla_flags("")


@pytest.mark.pipeline
def test_recommended_compiler_options_change_speed_not_results():
    x, w, g = _gauss(21, (4, 12, 12, 3)), _gauss(22, (3, 3, 3, 5)), _gauss(26, (4, 12, 12, 5))

    def conv(u, v):
        return jax.lax.conv_general_dilated(
            u, v, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    def grads(u, v, h):  # linear in each argument: round-off bounds from absolute values
        return jax.grad(lambda a, b: jnp.sum(conv(a, b) * h), argnums=(0, 1))(u, v)

    lowered = jax.jit(grads).lower(x, w, g)
    fast = lowered.compile(compiler_options=rt.recommended_compiler_options())(x, w, g)
    default = lowered.compile()(x, w, g)
    gx_abs, gw_abs = jax.jit(grads)(jnp.abs(x), jnp.abs(w), jnp.abs(g))
    _assert_within(fast[0], default[0], 2 * gamma(9 * 5) * gx_abs, "input gradient")
    _assert_within(fast[1], default[1], 2 * gamma(4 * 12 * 12) * gw_abs, "kernel gradient")


def test_configure_malloc_runs_in_a_fresh_process():
    # a separate interpreter: mallopt changes the whole process
    code = "from shearbridge.train.runtime import configure_malloc; print(configure_malloc())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=True,
    )
    assert out.stdout.strip() == ("True" if sys.platform.startswith("linux") else "False")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables are Linux-only")
def test_reexec_restarts_once_with_the_recommended_environment():
    code = (
        "import os\n"
        "from shearbridge.train.runtime import reexec_with_recommended_env, recommended_env\n"
        "print('start')\n"
        "reexec_with_recommended_env()\n"
        "print(all(os.environ[k] == v for k, v in recommended_env().items()))\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "SHEARBRIDGE_FAST"))
    }
    env["XLA_FLAGS"] = ""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    assert out.stdout.split() == [
        "start",
        "start",
        "True",
    ]  # ran twice: once as given, once restarted

"""NumPy references against hand-computed cases, and JAX/Flax against the references.

The JAX/Flax comparisons use the worst-case float32 round-off bound stated in
:mod:`shearbridge.models.parity` (Higham's gamma_n times the sum of |terms|).
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from shearbridge.models import numpy_ref as ref
from shearbridge.models import parity as tr


def nhwc(a: np.ndarray) -> np.ndarray:
    """A 2-D single-channel image as NHWC (1, H, W, 1)."""
    return np.asarray(a, dtype=np.float64)[None, :, :, None]


def hwio(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)[:, :, None, None]


# ---------------------------------------------------------------- hand-computed cases


def test_identity_kernel_returns_input():
    x = np.random.default_rng(1).standard_normal((2, 7, 6, 3))
    k = np.zeros((3, 3, 3, 3))
    for c in range(3):
        k[1, 1, c, c] = 1.0
    assert_array_equal(ref.conv2d(x, k, None, 1, "SAME"), x)


def test_conv_is_cross_correlation_not_convolution():
    x = np.arange(9.0).reshape(3, 3)
    k = np.array([[1.0, 0.0], [0.0, 0.0]])  # picks the top-left pixel of each window (no flip)
    assert_array_equal(ref.conv2d(nhwc(x), hwio(k), padding="VALID")[0, :, :, 0], x[:2, :2])
    ones = ref.conv2d(nhwc(x), hwio(np.ones((2, 2))), padding="VALID")[0, :, :, 0]
    assert_array_equal(ones, [[8.0, 12.0], [20.0, 24.0]])


def test_stride_dilation_and_bias_by_hand():
    x = np.arange(25.0).reshape(5, 5)
    one = hwio(np.ones((1, 1)))
    strided = ref.conv2d(nhwc(x), one, strides=2, padding="VALID")[0, :, :, 0]
    assert_array_equal(strided, x[::2, ::2])
    dil = ref.conv2d(nhwc(x), hwio(np.ones((3, 3))), np.array([0.5]), padding="VALID", dilation=2)
    assert dil.shape == (1, 1, 1, 1)
    assert dil[0, 0, 0, 0] == x[::2, ::2].sum() + 0.5


def _naive_conv(x, k, b, strides, pads, dil):
    """The definition, one output value at a time, padding by index test (no np.pad)."""
    n, h, w, _ = x.shape
    kh, kw, c_in, c_out = k.shape
    (plh, phh), (plw, phw) = pads
    oh = (h + plh + phh - (kh - 1) * dil[0] - 1) // strides[0] + 1
    ow = (w + plw + phw - (kw - 1) * dil[1] - 1) // strides[1] + 1
    y = np.zeros((n, oh, ow, c_out))
    for b_, p, q, o in np.ndindex(n, oh, ow, c_out):
        acc = b[o]
        for i, j, c in np.ndindex(kh, kw, c_in):
            r = p * strides[0] + i * dil[0] - plh
            s = q * strides[1] + j * dil[1] - plw
            if 0 <= r < h and 0 <= s < w:
                acc += x[b_, r, s, c] * k[i, j, c, o]
        y[b_, p, q, o] = acc
    return y


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv_matches_naive_loops_anisotropic(padding):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 6, 2))
    k = rng.standard_normal((3, 2, 2, 3))
    b = rng.standard_normal(3)
    strides, dil = (2, 1), (1, 2)
    pads = ref.resolve_padding(padding, (7, 6), (3, 2), strides, dil)
    want = _naive_conv(x, k, b, strides, pads, dil)
    assert_allclose(ref.conv2d(x, k, b, strides, padding, dil), want, rtol=1e-13, atol=1e-13)


def test_pools_match_naive_loops_anisotropic():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 7, 6, 2))
    window, strides = (3, 2), (2, 1)
    (plh, _), (plw, _) = ref.resolve_padding("SAME", (7, 6), window, strides)
    got_avg = ref.avg_pool(x, window, strides, "SAME", count_include_pad=False)
    got_incl = ref.avg_pool(x, window, strides, "SAME", count_include_pad=True)
    got_max = ref.max_pool(x, window, strides, "SAME")
    assert got_max.shape == (1, 4, 6, 2)
    for p, q, c in np.ndindex(4, 6, 2):
        vals = [
            x[0, r, s, c]
            for i, j in np.ndindex(*window)
            if 0 <= (r := p * 2 + i - plh) < 7 and 0 <= (s := q + j - plw) < 6
        ]
        assert got_max[0, p, q, c] == max(vals)
        assert got_avg[0, p, q, c] == pytest.approx(np.mean(vals), rel=1e-13)
        assert got_incl[0, p, q, c] == pytest.approx(np.sum(vals) / 6, rel=1e-13)


@pytest.mark.parametrize(
    "n, k, stride, dilation, expected",
    [
        (53, 2, 2, 1, (0, 1)),
        (4, 4, 1, 1, (1, 2)),
        (5, 3, 2, 1, (1, 1)),
        (53, 3, 1, 2, (2, 2)),
        (10, 1, 3, 1, (0, 0)),
        (6, 3, 2, 1, (0, 1)),
    ],
)
def test_same_padding_matches_xla_rule(n, k, stride, dilation, expected):
    assert ref.same_padding(n, k, stride, dilation) == expected
    lax_pads = jax.lax.padtype_to_pads((n,), ((k - 1) * dilation + 1,), (stride,), "SAME")
    assert tuple(lax_pads[0]) == expected


@pytest.mark.parametrize("n", range(1, 13))
@pytest.mark.parametrize(
    "k, stride, dilation", [(1, 1, 1), (3, 2, 1), (5, 3, 1), (3, 2, 2), (4, 2, 1)]
)
def test_same_output_size_is_ceil_n_over_stride(n, k, stride, dilation):
    y = ref.conv2d(np.ones((1, n, n, 1)), np.ones((k, k, 1, 1)), None, stride, "SAME", dilation)
    assert y.shape[1:3] == (math.ceil(n / stride),) * 2
    yp = ref.avg_pool(np.ones((1, n, n, 1)), k, stride, "SAME")
    assert yp.shape[1:3] == (math.ceil(n / stride),) * 2


def test_avg_and_max_pool_by_hand():
    x = nhwc(np.arange(16.0).reshape(4, 4))
    assert_array_equal(ref.avg_pool(x, 2, 2)[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    assert_array_equal(ref.max_pool(x, 2, 2)[0, :, :, 0], [[5.0, 7.0], [13.0, 15.0]])


def test_avg_pool_same_count_include_pad():
    x = np.ones((1, 3, 3, 1))  # SAME 2x2/2: pad (0, 1) -> the last row/column sees padding
    incl = ref.avg_pool(x, 2, 2, "SAME", count_include_pad=True)[0, :, :, 0]
    excl = ref.avg_pool(x, 2, 2, "SAME", count_include_pad=False)[0, :, :, 0]
    assert_array_equal(incl, [[1.0, 0.5], [0.5, 0.25]])
    assert_array_equal(excl, np.ones((2, 2)))
    assert_array_equal(ref.window_count((3, 3), 2, 2, "SAME"), [[4.0, 2.0], [2.0, 1.0]])


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 3, 3, 1))
    assert_array_equal(ref.max_pool(x, 2, 2, "SAME"), -np.ones((1, 2, 2, 1)))


def test_dense_by_hand():
    x = np.array([[1.0, 2.0]])
    w = np.array([[1.0, 0.0, 2.0], [0.5, -1.0, 1.0]])
    assert_array_equal(ref.dense(x, w, np.array([0.0, 1.0, -1.0])), [[2.0, -1.0, 3.0]])


@pytest.mark.parametrize(
    "call",
    [
        lambda: ref.conv2d(np.ones((1, 5, 5, 2)), np.ones((3, 3, 3, 1))),  # channel mismatch
        lambda: ref.conv2d(np.ones((5, 5, 1)), np.ones((3, 3, 1, 1))),  # not NHWC
        lambda: ref.conv2d(np.ones((1, 5, 5, 1)), np.ones((3, 3, 1, 1)), padding="FULL"),
        lambda: ref.avg_pool(np.ones((1, 2, 2, 1)), 3, 1, "VALID"),  # window larger than input
        lambda: ref.max_pool(np.ones((1, 4, 4, 1)), 2, 0),  # stride 0
        lambda: ref.dense(np.ones((2, 3)), np.ones((4, 2))),
    ],
)
def test_misuse_raises(call):
    with pytest.raises(ref.ReferenceShapeError):
        call()


# ---------------------------------------------------------------- JAX / Flax vs reference


def _check(row: dict) -> None:
    assert row["passed"], (
        f"{row['op']} {row['case']}: max |jax - ref| / A = {row['max_rel_diff']:.3g} exceeds the "
        f"float32 bound gamma_{row['n_terms']} = {row['tolerance']:.3g}"
    )


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(20240607, spawn_key=key))


@pytest.mark.parametrize("case", tr.CONV_CASES, ids=lambda c: "k{}s{}d{}{}_{}to{}".format(*c))
def test_lax_and_flax_conv_match_reference(case):
    i = tr.CONV_CASES.index(case)
    _check(tr.compare_lax_conv(_rng(0, i), *case))
    _check(tr.compare_flax_conv(_rng(1, i), *case))


@pytest.mark.parametrize("case", tr.POOL_CASES, ids=lambda c: "w{}s{}{}".format(*c))
def test_flax_pools_match_reference(case):
    i = tr.POOL_CASES.index(case)
    for cip in (True, False):
        _check(tr.compare_avg_pool(_rng(2, i, int(cip)), *case, count_include_pad=cip))
    row = tr.compare_max_pool(_rng(3, i), *case)
    assert row["max_abs_diff"] == 0.0, f"max_pool is exact, got {row['max_abs_diff']}"


@pytest.mark.parametrize("d_in, d_out", tr.DENSE_CASES)
def test_flax_dense_matches_reference(d_in, d_out):
    _check(tr.compare_dense(_rng(4, d_in), d_in, d_out))


@pytest.mark.pipeline
def test_translation_table_rows_are_complete_and_pass():
    rows = tr.translation_table(seed=7, size=12)
    keys = {"op", "case", "max_abs_diff", "max_rel_diff", "tolerance", "passed"}
    assert all(keys <= set(r) for r in rows)
    ops = {r["op"] for r in rows}
    assert {
        "lax.conv_general_dilated",
        "flax.linen.Conv",
        "flax.linen.avg_pool",
        "flax.linen.max_pool",
        "flax.linen.Dense",
        "jax.nn.gelu (grad)",
    } <= ops
    failed = [r for r in rows if not r["passed"]]
    assert not failed, failed
    assert set(tr.worst_by_op(rows)) == ops


def test_gamma_bound_is_higham():
    assert tr.gamma(1) == pytest.approx(tr.U32, rel=1e-7)
    assert tr.gamma(401) == pytest.approx(401 * tr.U32 / (1 - 401 * tr.U32))
    with pytest.raises(ValueError):
        tr.gamma(0)

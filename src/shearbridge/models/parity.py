"""NumPy -> JAX/Flax translation check: the table behind the paper's translation figure.

Every JAX/Flax building block used by the networks is compared with the float64
reference in :mod:`shearbridge.models.numpy_ref` (or :mod:`shearbridge.models.activations`)
on seeded random inputs (53x53 stamps, as in the study), at the float32 points
JAX saw, so only JAX's float32 arithmetic separates the two.

Tolerance rule (all bounds are worst cases, not fits)
-----------------------------------------------------
``u = 2**-24`` is float32's unit round-off (``eps32 = 2**-23 = 2u``).

* Convolution and dense layers. An output is a sum of ``n = K + 1`` terms
  (``K = KH*KW*C_in`` or ``C_in`` products, plus the bias). Evaluated in float32
  in *any* summation order, with or without fused multiply-add, its error obeys
  (Higham 2002, *Accuracy and Stability of Numerical Algorithms*, eq. 3.5)::

      |y_f32 - y| <= gamma_n * A,   gamma_n = n u / (1 - n u),   A = |b| + sum |x| |w|

  i.e. ``tol = c * eps32 * A`` with ``c = n / 2`` (plus O(u^2)). Each row reports
  ``max_rel_diff = max |y_jax - y_ref| / A`` over all outputs and
  ``tolerance = gamma_n``; the row passes when ``max_rel_diff <= tolerance``.
  Observed errors are typically ``~ sqrt(n) u A`` (round-off partly cancels),
  well inside the bound; a wrong padding, stride or dilation gives O(1) errors.
* Average pooling: ``n = window area`` (``n - 1`` additions and one division),
  ``A`` = (sum of |x| in the window) / divisor; same rule.
* Max pooling is exact (a comparison rounds nothing): ``tolerance = 0`` and
  ``A = |y_ref|``.
* Activations on ``|x| <= 8``: a float32 expression of at most 8 operations
  (16 for its autodiff derivative), each with a relative error of at most 4u
  (XLA's ``exp``/``tanh``/``erf``/``log1p`` are accurate to a few ulp rather than
  correctly rounded), on intermediates bounded by ``max(1, |x|)``, gives
  ``|f_jax - f_ref| <= 32 u max(1, |x|)`` (64 u for the derivative). Here
  ``A = max(1, |x|)`` and ``tolerance`` is 32u or 64u.

The bound assumes IEEE float32 arithmetic with a direct summation, which is what
XLA does on CPU. On NVIDIA GPUs JAX's default precision may use TF32 (10-bit
mantissa) or Winograd convolutions, and the conv/dense rows would then exceed it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.models import numpy_ref as ref
from shearbridge.models.activations import (
    NAMES,
    jax_activation,
    jax_derivative,
    max_abs_difference,
    numpy_activation,
    numpy_derivative,
)

__all__ = [
    "U32",
    "EPS32",
    "STAMP_PX",
    "ACTIVATION_RANGE",
    "gamma",
    "activation_tolerance",
    "CONV_CASES",
    "POOL_CASES",
    "DENSE_CASES",
    "compare_lax_conv",
    "compare_flax_conv",
    "compare_avg_pool",
    "compare_max_pool",
    "compare_dense",
    "compare_activation",
    "activation_points",
    "translation_table",
    "worst_by_op",
]

U32 = 2.0**-24  # float32 unit round-off
EPS32 = 2.0**-23  # float32 machine epsilon
STAMP_PX = 53  # stamp side in the study (pixels)
BATCH = 2
ACTIVATION_RANGE = 8.0  # activations are checked on |x| <= 8
_ACT_OPS = {"function": 8, "derivative": 16}
_ACT_ULP = 4.0

_DN = ("NHWC", "HWIO", "NHWC")

# (kernel, stride, dilation, padding, c_in, c_out); kernel 1 with dilation 2 is omitted (identical).
CONV_CASES: tuple[tuple[int, int, int, str, int, int], ...] = tuple(
    (k, s, d, p, cin, cout)
    for (cin, cout), k, s, d, p in itertools.product(
        ((1, 16), (16, 32)), (1, 3, 5), (1, 2), (1, 2), ("SAME", "VALID")
    )
    if not (k == 1 and d == 2)
)
# (window, stride, padding)
POOL_CASES: tuple[tuple[int, int, str], ...] = tuple(
    itertools.product((2, 3), (1, 2), ("SAME", "VALID"))
)
# (in_features, out_features): EnhancedGalaxyNN's two dense layers
DENSE_CASES: tuple[tuple[int, int], ...] = ((13 * 13 * 32, 128), (128, 2))


def gamma(n: int) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)`` for float32 (``u = 2**-24``)."""
    if n < 1 or n * U32 >= 1:
        raise ValueError(f"gamma needs 1 <= n < 2**24, got {n}")
    return n * U32 / (1.0 - n * U32)


def activation_tolerance(kind: str) -> float:
    """Bound on ``|f_jax - f_ref| / max(1, |x|)`` for ``kind`` 'function' or 'derivative'."""
    if kind not in _ACT_OPS:
        raise ValueError(f"kind must be one of {tuple(_ACT_OPS)}, got {kind!r}")
    return _ACT_OPS[kind] * _ACT_ULP * U32


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _row(
    op: str, case: str, got, want: np.ndarray, scale: np.ndarray, tol: float, n_terms: int
) -> dict:
    diff = np.abs(np.asarray(got, dtype=np.float64) - want)
    if got.shape != want.shape:
        raise ValueError(f"{op} {case}: JAX shape {got.shape} != reference shape {want.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / scale, np.where(diff > 0, np.inf, 0.0))
    max_rel = float(rel.max())
    return {
        "op": op,
        "case": case,
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": max_rel,
        "tolerance": float(tol),
        "passed": bool(max_rel <= tol),
        "n_terms": int(n_terms),
    }


def _conv_inputs(rng: np.random.Generator, k: int, c_in: int, c_out: int, size: int):
    x = _f32(rng.standard_normal((BATCH, size, size, c_in)))
    w = _f32(rng.standard_normal((k, k, c_in, c_out)) / np.sqrt(k * k * c_in))
    b = _f32(rng.standard_normal(c_out))
    return x, w, b


def _conv_case(k, s, d, p, c_in, c_out) -> str:
    return f"k{k} s{s} d{d} {p} {c_in}->{c_out}"


def compare_lax_conv(
    rng: np.random.Generator,
    k: int,
    stride: int,
    dilation: int,
    padding: str,
    c_in: int,
    c_out: int,
    size: int = STAMP_PX,
) -> dict:
    """``jax.lax.conv_general_dilated`` (no bias) vs :func:`numpy_ref.conv2d`; one table row."""
    x, w, _ = _conv_inputs(rng, k, c_in, c_out, size)
    got = jax.lax.conv_general_dilated(
        x, w, (stride, stride), padding, rhs_dilation=(dilation, dilation), dimension_numbers=_DN
    )
    want = ref.conv2d(x, w, None, stride, padding, dilation)
    scale = ref.conv2d_abs_terms(x, w, None, stride, padding, dilation)
    n = k * k * c_in
    return _row(
        "lax.conv_general_dilated",
        _conv_case(k, stride, dilation, padding, c_in, c_out),
        got,
        want,
        scale,
        gamma(n),
        n,
    )


def compare_flax_conv(
    rng: np.random.Generator,
    k: int,
    stride: int,
    dilation: int,
    padding: str,
    c_in: int,
    c_out: int,
    size: int = STAMP_PX,
) -> dict:
    """``flax.linen.Conv`` with given kernel and bias vs :func:`numpy_ref.conv2d`; one table row."""
    x, w, b = _conv_inputs(rng, k, c_in, c_out, size)
    layer = nn.Conv(c_out, (k, k), strides=stride, padding=padding, kernel_dilation=dilation)
    got = layer.apply({"params": {"kernel": jnp.asarray(w), "bias": jnp.asarray(b)}}, x)
    want = ref.conv2d(x, w, b, stride, padding, dilation)
    scale = ref.conv2d_abs_terms(x, w, b, stride, padding, dilation)
    n = k * k * c_in + 1
    return _row(
        "flax.linen.Conv",
        _conv_case(k, stride, dilation, padding, c_in, c_out),
        got,
        want,
        scale,
        gamma(n),
        n,
    )


def compare_avg_pool(
    rng: np.random.Generator,
    window: int,
    stride: int,
    padding: str,
    count_include_pad: bool,
    channels: int = 4,
    size: int = STAMP_PX,
) -> dict:
    """``flax.linen.avg_pool`` vs :func:`numpy_ref.avg_pool`; one table row."""
    x = _f32(rng.standard_normal((BATCH, size, size, channels)))
    got = nn.avg_pool(
        x, (window, window), (stride, stride), padding, count_include_pad=count_include_pad
    )
    want = ref.avg_pool(x, window, stride, padding, count_include_pad)
    scale = ref.avg_pool(np.abs(x), window, stride, padding, count_include_pad)
    n = window * window
    case = f"w{window} s{stride} {padding} count_include_pad={count_include_pad}"
    return _row("flax.linen.avg_pool", case, got, want, scale, gamma(n), n)


def compare_max_pool(
    rng: np.random.Generator,
    window: int,
    stride: int,
    padding: str,
    channels: int = 4,
    size: int = STAMP_PX,
) -> dict:
    """``flax.linen.max_pool`` vs :func:`numpy_ref.max_pool` (exact: tolerance 0); one row."""
    x = _f32(rng.standard_normal((BATCH, size, size, channels)))
    got = nn.max_pool(x, (window, window), (stride, stride), padding)
    want = ref.max_pool(x, window, stride, padding)
    return _row(
        "flax.linen.max_pool",
        f"w{window} s{stride} {padding}",
        got,
        want,
        np.abs(want),
        0.0,
        window * window,
    )


def compare_dense(rng: np.random.Generator, d_in: int, d_out: int, batch: int = 8) -> dict:
    """``flax.linen.Dense`` with given kernel and bias vs :func:`numpy_ref.dense`; one row."""
    x = _f32(rng.standard_normal((batch, d_in)))
    w = _f32(rng.standard_normal((d_in, d_out)) / np.sqrt(d_in))
    b = _f32(rng.standard_normal(d_out))
    got = nn.Dense(d_out).apply({"params": {"kernel": jnp.asarray(w), "bias": jnp.asarray(b)}}, x)
    want = ref.dense(x, w, b)
    scale = ref.dense(np.abs(x), np.abs(w), np.abs(b))
    return _row("flax.linen.Dense", f"{d_in}->{d_out}", got, want, scale, gamma(d_in + 1), d_in + 1)


def activation_points(rng: np.random.Generator, n_random: int = 4096) -> np.ndarray:
    """float32 test points on [-8, 8]: a uniform grid (including 0) plus uniform random draws."""
    grid = np.linspace(-ACTIVATION_RANGE, ACTIVATION_RANGE, 4001)
    return _f32(np.concatenate([grid, rng.uniform(-ACTIVATION_RANGE, ACTIVATION_RANGE, n_random)]))


def compare_activation(rng: np.random.Generator, name: str) -> list[dict]:
    """``jax.nn`` activation ``name`` and its autodiff derivative vs NumPy formulas; two rows."""
    x = activation_points(rng)
    x64 = x.astype(np.float64)
    scale = np.maximum(1.0, np.abs(x64))
    xj = jnp.asarray(x)
    f_abs, d_abs = max_abs_difference(name, x)
    rows = []
    for kind, jfun, nfun, abs_err in (
        ("function", jax_activation(name), numpy_activation(name), f_abs),
        ("derivative", jax_derivative(name), numpy_derivative(name), d_abs),
    ):
        row = _row(
            f"jax.nn.{name}" + ("" if kind == "function" else " (grad)"),
            f"{x.size} points, |x|<=8",
            np.asarray(jfun(xj)),
            nfun(x64),
            scale,
            activation_tolerance(kind),
            _ACT_OPS[kind],
        )
        if row["max_abs_diff"] != abs_err:  # the two routes must see the same numbers
            raise RuntimeError(
                f"{name} {kind}: max_abs_difference disagrees ({abs_err} vs {row['max_abs_diff']})"
            )
        rows.append(row)
    return rows


def translation_table(seed: int, size: int = STAMP_PX) -> list[dict]:
    """Compare every JAX/Flax building block with its NumPy reference.

    Parameters
    ----------
    seed : int
        Root of a ``numpy.random.SeedSequence``; each case gets its own child
        stream, so adding a case does not change the inputs of the others.
    size : int
        Input side in pixels (53, the study's stamp, by default).

    Returns
    -------
    list of dict
        One row per case with keys ``op``, ``case``, ``max_abs_diff``,
        ``max_rel_diff`` (``max |jax - ref| / A``, ``A`` the round-off scale of
        the module docstring), ``tolerance`` (the worst-case bound on
        ``max_rel_diff``), ``passed`` and ``n_terms``.
    """
    jobs: list = []
    for c in CONV_CASES:
        jobs.append(lambda r, c=c: [compare_lax_conv(r, *c, size=size)])
        jobs.append(lambda r, c=c: [compare_flax_conv(r, *c, size=size)])
    for w, s, p in POOL_CASES:
        for cip in (True, False):
            jobs.append(
                lambda r, w=w, s=s, p=p, cip=cip: [compare_avg_pool(r, w, s, p, cip, size=size)]
            )
        jobs.append(lambda r, w=w, s=s, p=p: [compare_max_pool(r, w, s, p, size=size)])
    for d_in, d_out in DENSE_CASES:
        jobs.append(lambda r, d_in=d_in, d_out=d_out: [compare_dense(r, d_in, d_out)])
    for name in NAMES:
        jobs.append(lambda r, name=name: compare_activation(r, name))
    streams = np.random.SeedSequence(seed).spawn(len(jobs))
    rows: list[dict] = []
    for job, ss in zip(jobs, streams):
        rows.extend(job(np.random.default_rng(ss)))
    return rows


def worst_by_op(rows: Sequence[dict]) -> dict[str, dict]:
    """Per op, the row with the largest ``max_rel_diff / tolerance`` (abs diff if tolerance 0)."""
    worst: dict[str, dict] = {}
    for row in rows:
        tol = row["tolerance"]
        key = row["max_rel_diff"] / tol if tol > 0 else row["max_abs_diff"]
        best = worst.get(row["op"])
        if best is None or key > best["_key"]:
            worst[row["op"]] = {**row, "_key": key}
    return {op: {k: v for k, v in r.items() if k != "_key"} for op, r in worst.items()}

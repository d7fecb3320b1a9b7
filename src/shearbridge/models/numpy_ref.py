"""Plain NumPy reference implementations of the CNN building blocks (the layer-parity check,
:mod:`shearbridge.models.parity`).

Written from the definitions, in float64, with the NHWC layout and HWIO kernels
that Flax uses, so that :mod:`shearbridge.models.parity` can check
``jax.lax.conv_general_dilated``, ``flax.linen.Conv``, ``flax.linen.avg_pool``
and ``flax.linen.max_pool`` against them. All sizes are in pixels.

Definitions
-----------
Convolution (a cross-correlation, as in deep learning) of an input
``x[n, h, w, c]`` with a kernel ``k[i, j, c, o]`` (``KH x KW`` taps), stride
``s``, kernel dilation ``d`` (XLA's ``rhs_dilation``) and bias ``b[o]``::

    y[n, p, q, o] = b[o] + sum_{i, j, c} xpad[n, p*s_h + i*d_h, q*s_w + j*d_w, c] * k[i, j, c, o]

where ``xpad`` is ``x`` zero-padded by ``(lo, hi)`` pixels on each axis.

Padding (per spatial axis of length ``n``, effective window ``k_eff``)::

    VALID: lo = hi = 0,                 out = floor((n - k_eff) / s) + 1
    SAME:  out = ceil(n / s),
           total = max((out - 1) * s + k_eff - n, 0),
           lo = total // 2,  hi = total - lo      (the extra pixel goes AFTER)

with ``k_eff = (k - 1) * d + 1``. This is XLA's / TensorFlow's rule
(``jax.lax.padtype_to_pads``): for an even total padding, e.g. a 2x2 window at
stride 2 on an odd-sized image, the padding is asymmetric, 0 before, 1 after.

Pooling uses the same SAME rule with ``k_eff`` = the window size (no dilation).
``avg_pool`` pads with zeros; with ``count_include_pad=True`` (Flax's default)
it divides every window sum by the full window area, padded pixels included, so
SAME-padded border outputs are pulled toward zero; with ``False`` it divides by
the number of real pixels in the window. ``max_pool`` pads with ``-inf``, so
padded pixels never win.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from shearbridge.models.activations import NAMES as ACTIVATION_NAMES
from shearbridge.models.activations import numpy_activation, numpy_derivative

__all__ = [
    "ReferenceShapeError",
    "ACTIVATION_NAMES",
    "numpy_activation",
    "numpy_derivative",
    "same_padding",
    "resolve_padding",
    "output_size",
    "conv2d",
    "conv2d_abs_terms",
    "avg_pool",
    "max_pool",
    "window_count",
    "dense",
]

Padding = str | Sequence[tuple[int, int]]


from shearbridge.errors import ReferenceShapeError  # noqa: E402  (re-exported)


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    else:
        pair = tuple(int(v) for v in value)
        if len(pair) != 2:
            raise ReferenceShapeError(f"{name} must be an int or a pair, got {value!r}")
    if min(pair) < 1:
        raise ReferenceShapeError(f"{name} must be >= 1, got {value!r}")
    return pair  # type: ignore[return-value]


def same_padding(n: int, k: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """XLA/TensorFlow SAME padding ``(lo, hi)`` in pixels for one axis.

    Parameters
    ----------
    n : int
        Input length (pixels).
    k : int
        Kernel or window length (taps).
    stride, dilation : int
        Stride and kernel dilation; the effective window is ``(k - 1) * dilation + 1``.

    Returns
    -------
    (lo, hi) : tuple of int
        Zero pixels added before and after; ``hi - lo`` is 0 or 1.
    """
    if n < 1 or k < 1 or stride < 1 or dilation < 1:
        raise ReferenceShapeError(
            f"same_padding needs positive n, k, stride, dilation; got {n, k, stride, dilation}"
        )
    k_eff = (k - 1) * dilation + 1
    out = -(-n // stride)  # ceil(n / stride)
    total = max((out - 1) * stride + k_eff - n, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: Padding,
    in_hw: tuple[int, int],
    k_hw: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Turn ``'SAME'``, ``'VALID'`` or explicit ``((lo, hi), (lo, hi))`` into pixel pairs."""
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return (0, 0), (0, 0)
        if mode == "SAME":
            return tuple(  # type: ignore[return-value]
                same_padding(n, k, s, d) for n, k, s, d in zip(in_hw, k_hw, strides, dilation)
            )
        raise ReferenceShapeError(
            f"padding must be 'SAME', 'VALID' or ((lo, hi), (lo, hi)), got {padding!r}"
        )
    pads = tuple(tuple(int(v) for v in p) for p in padding)
    if len(pads) != 2 or any(len(p) != 2 or min(p) < 0 for p in pads):
        raise ReferenceShapeError(
            f"explicit padding must be two non-negative (lo, hi) pairs, got {padding!r}"
        )
    return pads  # type: ignore[return-value]


def output_size(n: int, k: int, stride: int, lo: int, hi: int, dilation: int = 1) -> int:
    """Output length ``floor((n + lo + hi - k_eff) / stride) + 1`` (pixels)."""
    k_eff = (k - 1) * dilation + 1
    span = n + lo + hi - k_eff
    if span < 0:
        raise ReferenceShapeError(
            f"window of effective size {k_eff} px does not fit an input of {n} px "
            f"padded by ({lo}, {hi})"
        )
    return span // stride + 1


def _check_nhwc(x: np.ndarray, name: str = "x") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4:
        raise ReferenceShapeError(f"{name} must be NHWC (4-D), got shape {x.shape}")
    return x


def _taps(
    xpad: np.ndarray,
    k_hw: tuple[int, int],
    out_hw: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(i, j, view)``: the input pixels each output pixel sees through tap (i, j)."""
    (kh, kw), (oh, ow), (sh, sw), (dh, dw) = k_hw, out_hw, strides, dilation
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            rows = slice(r0, r0 + (oh - 1) * sh + 1, sh)
            cols = slice(c0, c0 + (ow - 1) * sw + 1, sw)
            yield i, j, xpad[:, rows, cols, :]


def _conv_geometry(x, kernel, strides, padding, dilation):
    x = _check_nhwc(x)
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 4:
        raise ReferenceShapeError(f"kernel must be HWIO (4-D), got shape {kernel.shape}")
    if kernel.shape[2] != x.shape[3]:
        raise ReferenceShapeError(
            f"kernel expects {kernel.shape[2]} input channels, x has {x.shape[3]}"
        )
    st, dl = _pair(strides, "strides"), _pair(dilation, "dilation")
    k_hw = kernel.shape[:2]
    (plh, phh), (plw, phw) = resolve_padding(padding, x.shape[1:3], k_hw, st, dl)
    out_hw = (
        output_size(x.shape[1], k_hw[0], st[0], plh, phh, dl[0]),
        output_size(x.shape[2], k_hw[1], st[1], plw, phw, dl[1]),
    )
    xpad = np.pad(x, ((0, 0), (plh, phh), (plw, phw), (0, 0)))
    return xpad, kernel, k_hw, out_hw, st, dl


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None = None,
    strides: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
) -> np.ndarray:
    """2-D cross-correlation, NHWC input, HWIO kernel, float64.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C_in)
        Input images (pixels).
    kernel : ndarray, shape (KH, KW, C_in, C_out)
        Filter taps, as stored in a ``flax.linen.Conv`` ``params['kernel']``.
    bias : ndarray, shape (C_out,), optional
        Added to every output pixel.
    strides : int or (int, int)
        Output spacing in input pixels.
    padding : 'SAME', 'VALID' or ((lo, hi), (lo, hi))
        See the module docstring; SAME is XLA's rule (asymmetric when odd).
    dilation : int or (int, int)
        Kernel dilation (``rhs_dilation``): taps are ``dilation`` pixels apart.

    Returns
    -------
    ndarray, shape (N, H_out, W_out, C_out), float64
    """
    xpad, kernel, k_hw, out_hw, st, dl = _conv_geometry(x, kernel, strides, padding, dilation)
    y = np.zeros((xpad.shape[0], *out_hw, kernel.shape[3]))
    for i, j, view in _taps(xpad, k_hw, out_hw, st, dl):
        y += np.einsum("nhwc,co->nhwo", view, kernel[i, j])
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float64)
        if bias.shape != (kernel.shape[3],):
            raise ReferenceShapeError(
                f"bias must have shape ({kernel.shape[3]},), got {bias.shape}"
            )
        y = y + bias
    return y


def conv2d_abs_terms(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None = None,
    strides: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
) -> np.ndarray:
    """Per output pixel, ``|b| + sum |x| |k|`` over its receptive field.

    The scale that bounds floating-point round-off of :func:`conv2d`
    (Higham, *Accuracy and Stability of Numerical Algorithms*, eq. 3.5).
    """
    b = None if bias is None else np.abs(np.asarray(bias, dtype=np.float64))
    x_abs = np.abs(np.asarray(x, np.float64))
    k_abs = np.abs(np.asarray(kernel, np.float64))
    return conv2d(x_abs, k_abs, b, strides, padding, dilation)


def _pool_geometry(x, window, strides, padding, fill):
    x = _check_nhwc(x)
    win = _pair(window, "window")
    st = _pair(1 if strides is None else strides, "strides")
    (plh, phh), (plw, phw) = resolve_padding(padding, x.shape[1:3], win, st)
    out_hw = (
        output_size(x.shape[1], win[0], st[0], plh, phh),
        output_size(x.shape[2], win[1], st[1], plw, phw),
    )
    xpad = np.pad(x, ((0, 0), (plh, phh), (plw, phw), (0, 0)), constant_values=fill)
    return xpad, win, st, out_hw


def window_count(
    in_hw: tuple[int, int],
    window: int | Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: Padding = "VALID",
) -> np.ndarray:
    """Number of real (unpadded) pixels in each pooling window, shape (H_out, W_out)."""
    ones = np.ones((1, *in_hw, 1))
    xpad, win, st, out_hw = _pool_geometry(ones, window, strides, padding, 0.0)
    total = np.zeros((1, *out_hw, 1))
    for _, _, view in _taps(xpad, win, out_hw, st, (1, 1)):
        total += view
    return total[0, :, :, 0]


def avg_pool(
    x: np.ndarray,
    window: int | Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
) -> np.ndarray:
    """Average pooling with Flax's signature and semantics (float64).

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    window : int or (int, int)
        Window size in pixels.
    strides : int or (int, int), optional
        Window spacing in pixels; ``None`` means 1, as in ``flax.linen.avg_pool``.
    padding : 'SAME', 'VALID' or ((lo, hi), (lo, hi))
    count_include_pad : bool
        True (Flax's default): divide by the window area, zero padding included.
        False: divide by the number of real pixels in the window.
    """
    xpad, win, st, out_hw = _pool_geometry(x, window, strides, padding, 0.0)
    total = np.zeros((xpad.shape[0], *out_hw, xpad.shape[3]))
    for _, _, view in _taps(xpad, win, out_hw, st, (1, 1)):
        total += view
    if count_include_pad:
        return total / (win[0] * win[1])
    return total / window_count(x.shape[1:3], window, strides, padding)[None, :, :, None]


def max_pool(
    x: np.ndarray,
    window: int | Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: Padding = "VALID",
) -> np.ndarray:
    """Max pooling with Flax's signature and semantics (padding never wins)."""
    xpad, win, st, out_hw = _pool_geometry(x, window, strides, padding, -np.inf)
    out = np.full((xpad.shape[0], *out_hw, xpad.shape[3]), -np.inf)
    for _, _, view in _taps(xpad, win, out_hw, st, (1, 1)):
        out = np.maximum(out, view)
    return out


def dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Fully connected layer ``y[..., o] = b[o] + sum_i x[..., i] kernel[i, o]`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or x.shape[-1] != kernel.shape[0]:
        raise ReferenceShapeError(
            f"dense needs kernel (in, out) with in == x.shape[-1]; "
            f"got x {x.shape}, kernel {kernel.shape}"
        )
    y = np.einsum("...i,io->...o", x, kernel)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return y

"""Convolutions as matrix products, for fast CPU inference (and a batch gather for training).

The process settings that speed up CPU *training* (XLA flags, compiler
options, glibc malloc) are in :mod:`shearbridge.train.runtime`; the
measurements behind both are in ``/work/notes/perf_report.md`` and
``tools/perf/train_step_bench.py``.

For *inference*, :class:`ConvReluAvgPool` computes conv -> activation -> 2x2
average pool as one matrix product on a space-to-depth view of the input and
never stores the full-resolution conv output: ~1.8x faster forward passes of
EnhancedGalaxyNN (its first layer has one input channel, which XLA's
convolutions handle poorly). Its backward pass is not faster than XLA's, so in
training it does not pay. :class:`PatchConv` is the general im2col convolution
(patches by slicing, one ``jnp.dot``): exact, differentiable, but slower than
Eigen's convolution here (XLA materialises the patch matrix slowly); it is kept
as the reference formulation. Both modules create ``kernel`` (KH, KW, Cin, Cout)
and ``bias`` (Cout,) exactly as ``nn.Conv`` does (same initialisers, same
names), so parameters move between them and ``nn.Conv`` unchanged.

Inputs are NHWC; kernel sizes, strides and paddings are in pixels of the
layer's input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "ConvReluAvgPool",
    "FastConvError",
    "PatchConv",
    "avg_pool2",
    "gather_batch",
    "im2col",
    "space_to_depth_kernel",
]

PaddingLike = str | int | Sequence[int] | Sequence[tuple[int, int]]


from shearbridge.errors import FastConvError  # noqa: E402  (re-exported)

# --------------------------------------------------------------------------- helpers


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        out = (value, value)
    else:
        out = tuple(int(v) for v in value)
    if len(out) != 2 or min(out) < 1:
        raise FastConvError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return out  # type: ignore[return-value]


def _pads(
    padding: PaddingLike, in_hw: tuple[int, int], ksize: tuple[int, int], strides: tuple[int, int]
) -> list[tuple[int, int]]:
    """(low, high) zero padding per spatial axis, in pixels, with nn.Conv's conventions."""
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise FastConvError(
                f"padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}"
            )
        return list(lax.padtype_to_pads(in_hw, ksize, strides, padding.upper()))
    if isinstance(padding, int):
        return [(padding, padding)] * 2
    pads = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
    if len(pads) != 2 or any(len(p) != 2 for p in pads):
        raise FastConvError(f"padding must give two (low, high) pairs, got {padding!r}")
    return [(int(lo), int(hi)) for lo, hi in pads]


def _flatten_batch(x: jax.Array, name: str) -> tuple[jax.Array, tuple[int, ...]]:
    if x.ndim < 3:
        raise FastConvError(
            f"{name} expects NHWC input with at least 3 dims (H, W, C), got {x.shape}"
        )
    batch = x.shape[:-3]
    return x.reshape((-1, *x.shape[-3:])), batch


def im2col(
    x: jax.Array,
    kernel_size: tuple[int, int],
    strides: tuple[int, int] = (1, 1),
    pads: Sequence[tuple[int, int]] = ((0, 0), (0, 0)),
) -> jax.Array:
    """Patch matrix of ``x`` (B, H, W, C): (B, Ho, Wo, KH*KW*C), features ordered (kh, kw, c).

    Built from KH*KW strided slices of the zero-padded input (no convolution
    primitive), so its transpose under autodiff is a sum of padded slices. The
    ordering matches ``kernel.reshape(KH*KW*C, Cout)`` of an HWIO kernel.
    """
    (kh, kw), (sh, sw) = kernel_size, strides
    xp = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)])
    ho = (xp.shape[1] - kh) // sh + 1
    wo = (xp.shape[2] - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise FastConvError(f"kernel {kernel_size} does not fit the padded input {xp.shape[1:3]}")
    cols = [
        xp[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    return jnp.concatenate(cols, axis=-1)


def space_to_depth_kernel(kernel: jax.Array) -> jax.Array:
    """A KxK conv kernel (K odd) as the ((K+1)^2 C, 4 F) matrix of :class:`ConvReluAvgPool`.

    Row index: (u, v, a, b, c) = window block (u, v) of ``(K+1)/2`` per axis,
    pixel (a, b) inside the 2x2 block, input channel c; the input-window pixel
    is (2u + a, 2v + b). Column index: (pa, pb, f) = output phase (the pixel of
    the 2x2 pooling window) and output channel. Entry = ``kernel[2u+a-pa, 2v+b-pb, c, f]``
    where that index lies inside the kernel, else 0. Linear in ``kernel``, so
    gradients flow back to the ordinary HWIO kernel.
    """
    k, _, c, f = kernel.shape
    nb = (k + 1) // 2
    phases = [
        jnp.pad(kernel, ((pa, 1 - pa), (pb, 1 - pb), (0, 0), (0, 0)))
        for pa in (0, 1)
        for pb in (0, 1)
    ]
    w = jnp.stack(phases, axis=-2)  # (K+1, K+1, C, 4, F), rows r = 2u + a
    w = w.reshape(nb, 2, nb, 2, c, 4, f).transpose(0, 2, 1, 3, 4, 5, 6)  # (u, v, a, b, c, phase, f)
    return w.reshape(nb * nb * 4 * c, 4 * f)


def avg_pool2(y: jax.Array) -> jax.Array:
    """2x2 average pool, stride 2, VALID (odd sizes floored), as a reshape-mean.

    Equal to ``nn.avg_pool(y, (2, 2), strides=(2, 2), padding="VALID")``; its
    gradient is a plain broadcast instead of a padded reduce-window.
    """
    b, h, w, c = y.shape
    hp, wp = h // 2, w // 2
    return y[:, : 2 * hp, : 2 * wp].reshape(b, hp, 2, wp, 2, c).mean(axis=(2, 4))


def gather_batch(data: jax.Array, idx: jax.Array) -> jax.Array:
    """``data[idx]`` along axis 0 for use inside a jitted step (the dataset stays on device).

    ``idx`` must hold valid indices (no bounds check or clamping is emitted;
    out-of-range indices give unspecified rows).
    """
    return data.at[idx].get(mode="promise_in_bounds")


# --------------------------------------------------------------------------- modules


class PatchConv(nn.Module):
    """``nn.Conv`` (NHWC, no dilation, no groups) computed as im2col + one matrix product.

    Parameters are created exactly as ``nn.Conv`` creates them (names
    ``kernel`` (KH, KW, Cin, features) and ``bias`` (features,), same default
    initialisers), so a parameter tree trained with one runs in the other.

    Attributes
    ----------
    features : int
        Output channels.
    kernel_size : int or (int, int)
        Kernel height and width in pixels.
    strides : int or (int, int)
        Stride in pixels (default 1).
    padding : 'SAME', 'VALID', int or ((lo, hi), (lo, hi))
        Zero padding in pixels, with ``nn.Conv``'s conventions.
    use_bias : bool
    precision : jax.lax.Precision, optional
        Passed to ``jnp.dot`` (float32 on CPU is exact float32 either way).
    """

    features: int
    kernel_size: int | Sequence[int] = (3, 3)
    strides: int | Sequence[int] = 1
    padding: PaddingLike = "SAME"
    use_bias: bool = True
    precision: Any = None
    kernel_init: Callable[..., jax.Array] = nn.initializers.lecun_normal()
    bias_init: Callable[..., jax.Array] = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ks = _pair(self.kernel_size, "kernel_size")
        st = _pair(self.strides, "strides")
        xb, batch = _flatten_batch(x, "PatchConv")
        cin = xb.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (*ks, cin, self.features), jnp.float32)
        pads = _pads(self.padding, xb.shape[1:3], ks, st)
        cols = im2col(xb, ks, st, pads)
        y = jnp.dot(
            cols, kernel.reshape(-1, self.features).astype(cols.dtype), precision=self.precision
        )
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(
                y.dtype
            )
        return y.reshape((*batch, *y.shape[1:]))


class ConvReluAvgPool(nn.Module):
    """Conv (KxK, K odd, stride 1) -> elementwise activation -> 2x2/2 average pool, in one product.

    Equal to ``nn.avg_pool(act(nn.Conv(features, (K, K), padding=padding)(x)),
    (2, 2), strides=(2, 2), padding="VALID")`` with the same parameters
    (``kernel`` (K, K, Cin, features), ``bias`` (features,), ``nn.Conv``'s
    initialisers). The input is viewed 2x2 space-to-depth, every pooling window
    gathers its (K+1)x(K+1) input patch, and one matrix product with
    :func:`space_to_depth_kernel` gives the four conv outputs of the window
    (its "phases") at once; activation and the 4-phase mean are one fused
    elementwise pass. The full-resolution conv output is never stored, which
    makes the forward pass of a one-input-channel first layer 3-4x faster
    (EnhancedGalaxyNN inference 1.5-1.9x). Its backward pass is not faster
    than XLA's (the kernel gradient is a transposed product over all pixels),
    so it does not speed up training. It does (K+1)^2/K^2 times the
    multiply-adds of the direct convolution (16/9 for K = 3); for layers with
    many input channels Eigen's direct convolution is faster.

    Attributes
    ----------
    features : int
        Output channels.
    kernel_size : int
        Odd kernel side in pixels.
    padding : 'SAME' or 'VALID'
        Conv padding; the pool is always VALID (odd conv outputs lose their
        last row/column, as in ``nn.avg_pool``).
    activation : callable
        Elementwise activation between conv and pool (default ReLU).
    """

    features: int
    kernel_size: int = 3
    padding: str = "SAME"
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    use_bias: bool = True
    kernel_init: Callable[..., jax.Array] = nn.initializers.lecun_normal()
    bias_init: Callable[..., jax.Array] = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        if not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise FastConvError(f"ConvReluAvgPool needs an odd int kernel_size, got {k!r}")
        if self.padding.upper() not in ("SAME", "VALID"):
            raise FastConvError(
                f"ConvReluAvgPool padding must be 'SAME' or 'VALID', got {self.padding!r}"
            )
        xb, batch = _flatten_batch(x, "ConvReluAvgPool")
        b, h, w, c = xb.shape
        kernel = self.param("kernel", self.kernel_init, (k, k, c, self.features), jnp.float32)
        lo = (k - 1) // 2 if self.padding.upper() == "SAME" else 0
        ho, wo = (h, w) if self.padding.upper() == "SAME" else (h - k + 1, w - k + 1)
        hp, wp = ho // 2, wo // 2
        if hp < 1 or wp < 1:
            raise FastConvError(f"input {xb.shape[1:3]} too small for conv {k}x{k} + 2x2 pool")
        nb = (k + 1) // 2
        # input rows -lo .. 2*hp + k - 2 - lo (even count 2*(hp + nb - 1)), zero padded or cropped
        xp = lax.pad(
            xb,
            jnp.zeros((), xb.dtype),
            [
                (0, 0, 0),
                (lo, 2 * (hp + nb - 1) - lo - h, 0),
                (lo, 2 * (wp + nb - 1) - lo - w, 0),
                (0, 0, 0),
            ],
        )
        hb, wb = hp + nb - 1, wp + nb - 1
        s2d = xp.reshape(b, hb, 2, wb, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, hb, wb, 4 * c)
        cols = [s2d[:, u : u + hp, v : v + wp] for u in range(nb) for v in range(nb)]
        patches = cols[0] if nb == 1 else jnp.concatenate(cols, axis=-1)  # (B, hp, wp, nb*nb*4*C)
        z = jnp.dot(patches, space_to_depth_kernel(kernel).astype(patches.dtype))
        z = z.reshape(b, hp, wp, 4, self.features)
        if self.use_bias:
            z = z + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(
                z.dtype
            )
        out = jnp.mean(self.activation(z), axis=3)
        return out.reshape((*batch, hp, wp, self.features))

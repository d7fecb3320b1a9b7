"""Pooling layers that limit aliasing, and how to measure it.

All lengths are in **pixels** of the layer's input; inputs are NHWC, as in Flax.

* :func:`binomial_filter`, :class:`BlurPool` (Zhang 2019, arXiv:1904.11486):
  low-pass binomial blur before subsampling, to limit aliasing.
* :func:`gaussian_blob`, :func:`subpixel_shift_metrics`: the sub-pixel
  shift-equivariance measurement used to compare pooling layers.

The other custom layers (Gaussian-derivative convolutions, dilated stacks,
attention gates) are in :mod:`shearbridge.models.layers`.
"""

from __future__ import annotations

from collections.abc import Callable
from math import comb

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import erf

from shearbridge.models.layers import LayerConfigError
from shearbridge.models.numpy_ref import same_padding

__all__ = [
    "binomial_filter",
    "BlurPool",
    "gaussian_blob",
    "subpixel_shift_metrics",
]


# ------------------------------------------------------------ downsampling


def binomial_filter(n_taps: int) -> np.ndarray:
    """Normalised 2-D binomial low-pass filter, shape (n_taps, n_taps).

    The outer product of row ``n_taps - 1`` of Pascal's triangle with itself.

    ``n_taps = 3`` gives ``[1, 2, 1]/4`` per axis, ``4`` gives ``[1, 3, 3, 1]/8``; the
    response at the Nyquist frequency is zero, of order ``n_taps - 1``.
    """
    if not 2 <= n_taps <= 7:
        raise LayerConfigError(f"filter_size must lie in [2, 7], got {n_taps}")
    row = np.array([comb(n_taps - 1, i) for i in range(n_taps)], dtype=np.float64)
    k = np.outer(row, row)
    return k / k.sum()


class BlurPool(nn.Module):
    """Anti-aliased downsampling (Zhang 2019): stride-1 pooling (optional), blur, subsampling.

    ``pool='none'`` is BlurPool (replaces a strided convolution's stride),
    ``'avg'`` and ``'max'`` first apply a 2x2 pooling at stride 1 (Zhang's
    AvgBlurPool / MaxBlurPool). The blur is depthwise and fixed (no
    parameters); output side ``ceil(n / stride)`` pixels.

    Attributes
    ----------
    filter_size : int
        Binomial taps per axis (2..7); 4 gives ``[1, 3, 3, 1]/8``.
    stride : int
        Subsampling factor (pixels).
    pool : str
        'none', 'avg' or 'max'.
    pad_mode : str
        'reflect' (Zhang's choice) or 'zeros'; pad sizes follow XLA's SAME rule.
    """

    filter_size: int = 4
    stride: int = 2
    pool: str = "none"
    pad_mode: str = "reflect"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.pool not in ("none", "avg", "max"):
            raise LayerConfigError(f"pool must be 'none', 'avg' or 'max', got {self.pool!r}")
        if self.pad_mode not in ("reflect", "zeros"):
            raise LayerConfigError(f"pad_mode must be 'reflect' or 'zeros', got {self.pad_mode!r}")
        if self.stride < 1:
            raise LayerConfigError(f"stride must be >= 1, got {self.stride}")
        if self.pool == "avg":  # count_include_pad=False: the last row/column is its own average
            x = nn.avg_pool(x, (2, 2), (1, 1), "SAME", count_include_pad=False)
        elif self.pool == "max":
            x = nn.max_pool(x, (2, 2), (1, 1), "SAME")
        n = self.filter_size
        pads = [same_padding(x.shape[ax], n, self.stride) for ax in (1, 2)]
        mode = "reflect" if self.pad_mode == "reflect" else "constant"
        x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), mode=mode)
        # the binomial kernel is separable: blur rows, then columns, each as a weighted sum of
        # strided slices (XLA's CPU depthwise convolution, and above all its gradient, is
        # several times slower than these elementwise sums; the result is the same)
        row = binomial_filter(n)[n // 2] / binomial_filter(n)[n // 2].sum()
        for axis in (1, 2):
            out_len = (x.shape[axis] - n) // self.stride + 1
            parts = [
                float(row[i])
                * jax.lax.slice_in_dim(x, i, i + self.stride * (out_len - 1) + 1, self.stride, axis)
                for i in range(n)
            ]
            x = sum(parts[1:], parts[0])
        return x


# ------------------------------------------------------------ sub-pixel shift measurement


def gaussian_blob(
    size: int,
    sigma_px: float,
    offset_px: tuple[float, float] = (0.0, 0.0),
    pixel_integrated: bool = True,
) -> np.ndarray:
    """Unit-flux round Gaussian on a ``size x size`` grid, float64.

    Centred at the image centre ``(size - 1) / 2`` plus ``offset_px = (dx, dy)``
    pixels; ``pixel_integrated`` integrates over each pixel (erf differences),
    otherwise samples at pixel centres. Axis 0 is y, axis 1 is x.
    """
    if sigma_px <= 0:
        raise LayerConfigError(f"sigma_px must be > 0, got {sigma_px}")
    c = (size - 1) / 2.0

    def profile(shift: float) -> np.ndarray:
        if pixel_integrated:
            edges = np.arange(size + 1) - 0.5 - c - shift
            return 0.5 * np.diff(erf(edges / (np.sqrt(2.0) * sigma_px)))
        r = np.arange(size) - c - shift
        return np.exp(-0.5 * (r / sigma_px) ** 2) / (np.sqrt(2.0 * np.pi) * sigma_px)

    return np.outer(profile(offset_px[1]), profile(offset_px[0]))


def subpixel_shift_metrics(
    pool: Callable[[jax.Array], jax.Array], sigma_px: float, size: int = 32, n_phases: int = 21
) -> dict[str, float]:
    """How much a downsampling layer's output depends on the sub-pixel phase of its input.

    A blob of width ``sigma_px`` (pixel-integrated) is shifted along x by
    ``n_phases`` offsets ``delta`` in [0, 1] px and pooled (factor 2). A
    shift-equivariant pooling moves the output centroid by exactly ``delta / 2``
    output px and keeps the output's energy and second moment fixed.

    Returns
    -------
    dict
        ``centroid_error_px``: max over phases of ``|2 (x_c(delta) - x_c(0)) - delta|``,
        in input pixels; ``energy_variation``: (max - min) / mean of ``sum y^2``;
        ``size_variation``: (max - min) / mean of the x second moment of ``y``.
    """
    deltas = np.linspace(0.0, 1.0, n_phases)
    images = np.stack([gaussian_blob(size, sigma_px, (d, 0.0)) for d in deltas])[..., None]
    y = np.asarray(pool(jnp.asarray(images, dtype=jnp.float32)), dtype=np.float64)[..., 0]
    prof = y.sum(axis=1)  # (phase, x)
    cols = np.arange(prof.shape[1], dtype=np.float64)
    flux = prof.sum(axis=1)
    xc = (prof * cols).sum(axis=1) / flux
    ixx = (prof * (cols[None, :] - xc[:, None]) ** 2).sum(axis=1) / flux
    energy = (y**2).sum(axis=(1, 2))
    return {
        "centroid_error_px": float(np.max(np.abs(2.0 * (xc - xc[0]) - deltas))),
        "energy_variation": float(np.ptp(energy) / energy.mean()),
        "size_variation": float(np.ptp(ixx) / ixx.mean()),
    }

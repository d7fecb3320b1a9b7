"""Custom Flax (linen) layers for precision-preserving shear CNNs.

All lengths (kernel sizes, scales ``sigma``, shifts, receptive fields) are in
**pixels** of the layer's input; inputs are NHWC, as in Flax.

* :class:`GaussianDerivativeConv`: filters that are analytic functions of a
  learnable scale (scale-normalised Gaussian derivatives up to second order,
  mixed by learned weights), so the network learns *sizes*, not pixel patterns.
* :class:`DilatedConvStack`: dilated 3x3 convolutions at full resolution, the
  no-downsampling alternative to pooling.
* :class:`ChannelAttention`, :class:`SpatialAttention`, :class:`CBAM`
  (Woo et al. 2018, arXiv:1807.06521): multiplicative gates in (0, 1).

Anti-aliased pooling (:class:`~shearbridge.models.pooling.BlurPool`) and the sub-pixel
shift-equivariance measurement used to compare pooling layers are in
:mod:`shearbridge.models.pooling`.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.models.activations import jax_activation

__all__ = [
    "LayerConfigError",
    "BASIS",
    "BASIS_ORDER",
    "gaussian_derivative_basis",
    "GaussianDerivativeConv",
    "receptive_field",
    "DilatedConvStack",
    "ChannelAttention",
    "SpatialAttention",
    "CBAM",
]


from shearbridge.errors import LayerConfigError  # noqa: E402  (re-exported)

# ------------------------------------------------------------ scale-sensitive kernels

BASIS = ("g", "gx", "gy", "gxx", "gxy", "gyy")
BASIS_ORDER = (0, 1, 1, 2, 2, 2)  # derivative order of each basis function


def gaussian_derivative_basis(sigma_px: jax.Array, size: int) -> jax.Array:
    """Scale-normalised Gaussian derivatives sampled at pixel centres.

    With ``u = x / sigma``, ``v = y / sigma`` (pixel offsets from the kernel
    centre over the scale) and ``G = exp(-(u^2 + v^2) / 2) / (2 pi sigma^2)``,
    the basis is ``sigma^n d^n G`` (Lindeberg's gamma = 1 normalisation)::

        g = G,  gx = -u G,  gy = -v G,  gxx = (u^2 - 1) G,  gxy = u v G,  gyy = (v^2 - 1) G

    so a structure of size ``s`` px gives its largest response at ``sigma ~ s``.
    ``gxx`` and ``gyy`` have their window mean removed (truncation to a finite
    window leaves a small DC term; a derivative filter must not see a constant
    sky level). ``gx``, ``gy``, ``gxy`` sum to zero by symmetry.

    Parameters
    ----------
    sigma_px : array, shape (F,)
        Gaussian scales in pixels, one per filter.
    size : int
        Odd kernel side in pixels.

    Returns
    -------
    array, shape (size, size, 6, F)
        Basis in :data:`BASIS` order; axis 0 is y (rows), axis 1 is x (columns).
    """
    r = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2.0
    s = jnp.asarray(sigma_px, dtype=jnp.float32)[None, None, :]
    u = r[None, :, None] / s  # x / sigma, varies along columns
    v = r[:, None, None] / s  # y / sigma, varies along rows
    g = jnp.exp(-0.5 * (u * u + v * v)) / (2.0 * jnp.pi * s * s)
    gxx = (u * u - 1.0) * g
    gyy = (v * v - 1.0) * g
    gxx = gxx - jnp.mean(gxx, axis=(0, 1), keepdims=True)
    gyy = gyy - jnp.mean(gyy, axis=(0, 1), keepdims=True)
    return jnp.stack([g, -u * g, -v * g, gxx, u * v * g, gyy], axis=2)


class GaussianDerivativeConv(nn.Module):
    """Convolution whose filters are learned mixtures of Gaussian derivatives of learnable scale.

    Filter ``f`` on input channel ``c`` is ``sum_b mix[b, c, f] * B_b(sigma_f)``
    with ``B`` the scale-normalised basis of :func:`gaussian_derivative_basis`
    and ``sigma_f = exp(log_sigma[f])`` pixels (log parametrisation: positive,
    gradients act on relative scale). A normalised Laplacian-of-Gaussian is
    ``mix[gxx] = mix[gyy] = 1``: the magnitude of its (negative) response at
    the centre of a Gaussian blob of width ``sigma_b`` peaks at ``sigma = sigma_b``
    (at ``sqrt(sigma_b^2 + 1/12)`` px for a pixel-integrated blob).

    Attributes
    ----------
    features : int
        Number of output filters, each with its own scale.
    kernel_size : int
        Odd kernel side in pixels; take it >= 6 sigma_max + 1 to avoid truncation.
    sigma_init_px : (float, float)
        Initial scales, log-spaced from the first to the second value (pixels).
    padding : str
        'SAME' or 'VALID', as in ``flax.linen.Conv``.
    use_bias : bool
        Add a learned bias per output filter.
    """

    features: int
    kernel_size: int = 9
    sigma_init_px: tuple[float, float] = (1.0, 3.0)
    padding: str = "SAME"
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        if k < 3 or k % 2 == 0:
            raise LayerConfigError(f"kernel_size must be odd and >= 3, got {k}")
        lo, hi = self.sigma_init_px
        if not 0 < lo <= hi:
            raise LayerConfigError(
                f"sigma_init_px must satisfy 0 < lo <= hi, got {self.sigma_init_px}"
            )
        c_in = x.shape[-1]
        log_sigma = self.param(
            "log_sigma",
            lambda _key, shape: jnp.linspace(np.log(lo), np.log(hi), shape[0], dtype=jnp.float32),
            (self.features,),
        )
        n_basis = len(BASIS)
        mix = self.param(
            "mix",
            nn.initializers.normal(stddev=1.0 / np.sqrt(n_basis * c_in)),
            (n_basis, c_in, self.features),
        )
        basis = gaussian_derivative_basis(jnp.exp(log_sigma), k)  # (k, k, 6, F)
        kernel = jnp.einsum("hwbf,bcf->hwcf", basis, mix)
        y = jax.lax.conv_general_dilated(
            x, kernel, (1, 1), self.padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


# ------------------------------------------------------------ full-resolution convolutions


def receptive_field(kernel_size: int, dilations: Sequence[int]) -> int:
    """Receptive-field side (pixels) of stacked stride-1 convolutions: ``1 + (k-1) sum(d)``."""
    return 1 + (kernel_size - 1) * int(sum(dilations))


class DilatedConvStack(nn.Module):
    """Dilated ``k x k`` convolutions at full resolution (no downsampling), each + activation.

    With ``kernel_size = 3`` and dilations ``(1, 2, 4)`` the receptive field is
    15x15 px and, since every offset ``a + 2b + 4c`` with ``a, b, c`` in
    ``{-1, 0, 1}`` occurs, it has no holes. Output side = input side (SAME).

    Attributes
    ----------
    features : int
        Channels of every convolution.
    dilations : sequence of int
        Kernel dilation (pixels between taps) of each convolution, in order.
    kernel_size : int
        Taps per axis.
    activation : str
        One of :data:`shearbridge.models.activations.NAMES`.
    """

    features: int
    dilations: Sequence[int] = (1, 2, 4)
    kernel_size: int = 3
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if not self.dilations or min(self.dilations) < 1:
            raise LayerConfigError(
                f"dilations must be a non-empty sequence of ints >= 1, got {self.dilations}"
            )
        act = jax_activation(self.activation)
        for d in self.dilations:
            k = (self.kernel_size, self.kernel_size)
            conv = nn.Conv(self.features, k, padding="SAME", kernel_dilation=d)
            x = act(conv(x))
        return x


# ------------------------------------------------------------ attention


class ChannelAttention(nn.Module):
    """CBAM channel gate: ``y = x * sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``.

    The pooled descriptors are global over the image (so the gate ignores *where*
    a feature is); the MLP is shared, with hidden width ``max(C // reduction, 1)``
    and ReLU. Weights have shape (N, 1, 1, C) and lie in (0, 1).
    """

    reduction: int = 8

    @nn.compact
    def weights(self, x: jax.Array) -> jax.Array:
        """Gate values, shape (N, 1, 1, C)."""
        if self.reduction < 1:
            raise LayerConfigError(f"reduction must be >= 1, got {self.reduction}")
        c = x.shape[-1]
        hidden = nn.Dense(max(c // self.reduction, 1), name="hidden")
        out = nn.Dense(c, name="out")

        def mlp(v: jax.Array) -> jax.Array:
            return out(nn.relu(hidden(v)))

        avg = jnp.mean(x, axis=(1, 2), keepdims=True)
        mx = jnp.max(x, axis=(1, 2), keepdims=True)
        return nn.sigmoid(mlp(avg) + mlp(mx))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x * self.weights(x)


class SpatialAttention(nn.Module):
    """CBAM spatial gate: ``y = x * sigmoid(conv_kxk([mean_c(x), max_c(x)]))``.

    The two channel-pooled maps are stacked and convolved (SAME, ``kernel_size``
    px, with bias), so the gate is equivariant to integer shifts away from the
    borders. Weights have shape (N, H, W, 1) and lie in (0, 1).
    """

    kernel_size: int = 7

    @nn.compact
    def weights(self, x: jax.Array) -> jax.Array:
        """Gate values, shape (N, H, W, 1)."""
        maps = jnp.concatenate(
            [jnp.mean(x, axis=-1, keepdims=True), jnp.max(x, axis=-1, keepdims=True)], axis=-1
        )
        return nn.sigmoid(nn.Conv(1, (self.kernel_size,) * 2, padding="SAME", name="conv")(maps))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x * self.weights(x)


class CBAM(nn.Module):
    """Convolutional Block Attention Module: channel gate, then spatial gate (shapes preserved)."""

    reduction: int = 8
    kernel_size: int = 7

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = ChannelAttention(self.reduction, name="channel")(x)
        return SpatialAttention(self.kernel_size, name="spatial")(x)

"""ShapeNet: a precision-preserving CNN for galaxy shapes, with switchable ingredients.

The baseline diagnosis (:mod:`shearbridge.diagnosis.fisher`) found that ShearNet's
convolution and pooling layers keep almost all of the shear information and
that the precision is lost in the read-out (a 5,408 -> 128 dense layer that
has to learn, from an un-normalised stamp, a function accurate to 1e-4). ShapeNet
changes exactly those parts, each behind a switch so that the ablation study
can add them one at a time to the baseline and remove them one at a time
from the final model:

``input_norm``
    Divide the stamp by a Gaussian-aperture flux estimate (aperture sigma
    ``aperture_px`` pixels), so the trunk sees a flux-free image; the log of
    the estimate goes to the head, so flux stays predictable.
``activation``
    ``'relu'`` (baseline) or a smooth one (``'gelu'``, ``'silu'``, ``'mish'``).
``pool``
    What follows each convolution: ``'avg'`` (ShearNet's aliasing 2x2 average
    pool), ``'blur'`` (anti-aliased BlurPool, Zhang 2019) or ``'none'`` (full
    resolution; the convolutions are dilated by ``dilations`` instead, so the
    receptive field still grows).
``head``
    ``'dense'`` (flatten -> ``hidden`` dense, ShearNet's read-out) or
    ``'moment'``: Gaussian-weighted moment pooling (:class:`MomentPool`) of the
    normalised stamp and of every feature map at several scales, followed by
    an MLP of ``head_layers`` hidden layers. Moment pooling is a fixed linear
    map; shear lives in its spin-2 (quadrupole) rows.
``moments``
    Feed the head the PSF-deconvolved adaptive moments of the stamp
    (:func:`shearbridge.models.moments.moment_features`: an analytic shear estimate,
    sizes, centroid; no parameters) — conditioning on the PSF through its
    sigma ``psf_sigma_px`` (pixels), which comes from the simulation record of the data the
    network is trained on (:func:`shearbridge.models.bind_data_kwargs`), never a constant.
``residual``
    With ``moments``: predict (g1, g2) as a learnable affine map of the
    analytic estimate plus a learned correction whose last layer starts at
    zero, so training begins at the analytic answer instead of having to
    learn an identity to 1e-4 precision.
``attention``
    Channel attention (squeeze-excitation, :class:`~shearbridge.models.layers.ChannelAttention`)
    on the last feature maps.

``ShapeNet()`` with its defaults is the final model;
:data:`shearbridge.config.ablation.BASELINE_LIKE` gives the
settings under which it has EnhancedGalaxyNN's layer list (tested to have the
same parameter count).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.models.activations import NAMES as ACTIVATIONS
from shearbridge.models.layers import ChannelAttention, LayerConfigError
from shearbridge.models.moments import MOMENT_KEYS, WEIGHT_FRACTIONS, moment_features
from shearbridge.models.moments_affine import affine_data_init, analytic_shears
from shearbridge.models.pooling import BlurPool

__all__ = ["ShapeNet", "MomentPool", "moment_weight_maps", "aperture_flux", "analytic_shears"]

POOLS = ("avg", "blur", "none")
HEADS = ("dense", "moment")
G_STD = 0.25  # spread of the training shears; only initialises the residual's scale


def moment_weight_maps(size: int, scales_px: Sequence[float], spacing: float = 1.0) -> np.ndarray:
    """Moment-pooling weights, shape ``(size * size, 6 * len(scales_px))``, float32.

    For each Gaussian weight of standard deviation ``s`` (input pixels),
    ``w = exp(-r^2 / 2 s^2) / (2 pi s^2)`` about the stamp centre, six maps:
    ``w``, ``w x / s``, ``w y / s``, ``w (x^2 + y^2) / s^2`` (size),
    ``w (x^2 - y^2) / s^2`` and ``w 2 x y / s^2`` (the two spin-2 components).
    ``x`` runs along the last image axis, ``y`` along the first; ``spacing`` is
    the grid's pixel size in input pixels (2 after one 2x2 pooling).
    """
    if size < 1 or not scales_px or min(scales_px) <= 0 or spacing <= 0:
        raise LayerConfigError(
            f"moment maps need size >= 1, positive scales and spacing; got {size}, "
            f"{tuple(scales_px)}, {spacing}"
        )
    c = (size - 1) / 2.0
    y, x = (np.mgrid[0:size, 0:size].astype(np.float64) - c) * spacing
    maps = []
    for s in scales_px:
        w = np.exp(-(x**2 + y**2) / (2 * s**2)) * spacing**2 / (2 * np.pi * s**2)
        u, v = x / s, y / s
        maps += [w, w * u, w * v, w * (u**2 + v**2), w * (u**2 - v**2), w * 2 * u * v]
    return np.stack([m.ravel() for m in maps], axis=-1).astype(np.float32)


class MomentPool(nn.Module):
    """Gaussian-weighted moment pooling: ``(B, H, W, C) -> (B, C * 6 * len(scales_px))``.

    A fixed (parameter-free) linear map from each channel to its weighted
    moments (see :func:`moment_weight_maps`). Unlike a flatten + dense layer it
    has no spatial parameters to learn, keeps sub-pixel centroid and
    quadrupole information exactly (it is linear), and its spin-2 outputs
    change sign under a 90-degree rotation of the input, as a shear does.
    """

    scales_px: Sequence[float] = (1.5, 3.0, 6.0)
    spacing: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4 or x.shape[1] != x.shape[2]:
            raise LayerConfigError(f"MomentPool expects square NHWC maps, got {x.shape}")
        w = jnp.asarray(moment_weight_maps(x.shape[1], self.scales_px, self.spacing), x.dtype)
        flat = x.reshape(x.shape[0], -1, x.shape[-1])  # (B, P, C)
        return jnp.einsum("bpc,pm->bcm", flat, w).reshape(x.shape[0], -1)


def aperture_flux(x: jax.Array, aperture_px: float) -> jax.Array:
    """Gaussian-weighted flux ``sum(x w)`` per stamp ``(B,)``.

    ``w = exp(-r^2 / 2 a^2)`` (peak 1)."""
    size = x.shape[1]
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size] - c
    w = jnp.asarray(np.exp(-(xx**2 + yy**2) / (2 * aperture_px**2)), x.dtype)
    return jnp.einsum("bhw,hw->b", x, w)


class ShapeNet(nn.Module):
    """Precision-preserving shape CNN (see the module docstring for each switch).

    Attributes
    ----------
    n_outputs : int
        2 (g1, g2) or 4 (g1, g2, size_arcsec, flux).
    channels : sequence of int
        Filters of each 3x3 convolution, in order.
    dilations : sequence of int
        Dilation of each convolution (used as given for every ``pool``).
    activation, pool, head : str
        See the module docstring.
    hidden : int
        Width of the head's hidden layers.
    head_layers : int
        Hidden layers in the head (ShearNet: 1).
    moment_scales_px : sequence of float
        Gaussian weight scales of the moment head, in input pixels.
    input_norm : bool
        Divide the stamp by its aperture flux (``aperture_px``) and feed the log-flux to the head.
    flux_floor : float
        Softening of the flux estimate (image units): the stamp is divided by
        ``sqrt(F_ap^2 + flux_floor^2)``, which stays finite for a noise-only stamp.
    moments : bool
        Adaptive-moment features in the head (needs ``psf_sigma_px``, pixels).
    residual : bool
        Analytic (g1, g2) plus a learned correction (needs ``moments``).
    attention : bool
        Channel attention on the last feature maps.
    """

    n_outputs: int = 4
    channels: Sequence[int] = (16, 32)
    dilations: Sequence[int] = (1, 1)
    activation: str = "gelu"
    pool: str = "avg"
    head: str = "moment"
    hidden: int = 128
    head_layers: int = 2
    moment_scales_px: Sequence[float] = (1.5, 3.0, 6.0)
    input_norm: bool = True
    aperture_px: float = 6.0
    flux_floor: float = 0.05
    moments: bool = True
    residual: bool = True
    psf_sigma_px: float | None = None  # from the data: models.bind_data_kwargs(..., sim)
    attention: bool = False

    def _check(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise LayerConfigError(
                f"activation must be one of {ACTIVATIONS}, got {self.activation!r}"
            )
        if self.pool not in POOLS:
            raise LayerConfigError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.head not in HEADS:
            raise LayerConfigError(f"head must be one of {HEADS}, got {self.head!r}")
        if len(self.channels) != len(self.dilations) or not self.channels:
            raise LayerConfigError(
                f"channels {tuple(self.channels)} and dilations {tuple(self.dilations)} "
                "must be non-empty and of equal length"
            )
        if self.head_layers < 1 or self.hidden < 1:
            raise LayerConfigError("head_layers and hidden must be >= 1")
        if self.residual and not self.moments:
            raise LayerConfigError(
                "residual=True needs moments=True (it corrects the analytic shear)"
            )
        if self.moments and not (self.psf_sigma_px is not None and self.psf_sigma_px > 0):
            raise LayerConfigError(
                "moments=True needs psf_sigma_px, the PSF sigma of the data in pixels "
                "(set from the dataset's simulation record by "
                f"shearbridge.models.bind_data_kwargs), got {self.psf_sigma_px!r}"
            )

    @nn.compact
    def __call__(
        self, x: jax.Array, *, return_features: bool = False
    ) -> jax.Array | dict[str, jax.Array]:
        """Predict ``(B, n_outputs)`` from stamps ``(B, S, S)`` or ``(B, S, S, 1)`` (image units).

        With ``return_features`` (static), return every stage's output in a
        dict (keys in order of computation; ``"out"`` is the prediction).
        """
        self._check()
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.ndim != 3 or x.shape[1] != x.shape[2]:
            raise ValueError(f"ShapeNet expects stamps (B, S, S) or (B, S, S, 1), got {x.shape}")
        act = getattr(jax.nn, self.activation)
        f: dict[str, jax.Array] = {}
        extra = []
        if self.moments:
            am = moment_features(x, self.psf_sigma_px)
            f["moments"] = am
            extra.append(am)
        if self.input_norm:
            flux = jnp.sqrt(aperture_flux(x, self.aperture_px) ** 2 + self.flux_floor**2)
            # flux-free stamp, scaled so a typical galaxy peaks near 1
            x = x / flux[:, None, None] * (2 * np.pi * 3.0**2)
            extra.append(jnp.log(flux)[:, None])
        h = x[..., None]
        f["input"] = h
        spacing = 1.0
        for i, (c, d) in enumerate(zip(self.channels, self.dilations), start=1):
            h = nn.Conv(c, (3, 3), padding="SAME", kernel_dilation=(d, d), name=f"conv{i}")(h)
            f[f"conv{i}"] = h
            h = act(h)
            f[f"act{i}"] = h
            if self.pool == "avg":
                h = nn.avg_pool(h, (2, 2), strides=(2, 2), padding="VALID")
            elif self.pool == "blur":
                h = BlurPool(filter_size=4, stride=2, pool="none")(h)
            if self.pool != "none":
                spacing *= 2.0
                f[f"pool{i}"] = h
        if self.attention:
            h = ChannelAttention(name="attention")(h)
            f["attention"] = h
        if self.head == "moment":
            raw = MomentPool(self.moment_scales_px, 1.0)(f["input"])
            feats = MomentPool(self.moment_scales_px, spacing)(h)
            z = jnp.concatenate([raw, feats, *extra], axis=-1)
        else:
            z = jnp.concatenate([h.reshape(h.shape[0], -1), *extra], axis=-1)
        f["pooled"] = z
        for j in range(1, self.head_layers + 1):
            z = act(nn.Dense(self.hidden, name=f"dense{j}")(z))
            f[f"dense{j}"] = z
        if not self.residual:
            f["out"] = nn.Dense(self.n_outputs, name="out")(z)
            return f if return_features else f["out"]
        # residual: out = sum_k a_k * g_analytic_k + b + correction (last layer starts at zero),
        # one analytic shear per adaptive-moment weight; they start equally weighted
        corr = nn.Dense(self.n_outputs, kernel_init=nn.initializers.zeros, name="out")(z)
        nk = len(MOMENT_KEYS)
        g_an = jnp.stack(
            [
                f["moments"][
                    :, [k * nk + MOMENT_KEYS.index("g1"), k * nk + MOMENT_KEYS.index("g2")]
                ]
                for k in range(len(WEIGHT_FRACTIONS))
            ],
            axis=1,
        )  # (B, n_weights, 2)
        # (replaced by the least-squares solution on the training data, see data_init)
        init = 1.0 / (G_STD * len(WEIGHT_FRACTIONS))
        scale = self.param("g_scale", nn.initializers.constant(init), (len(WEIGHT_FRACTIONS), 2))
        offset = self.param("g_offset", nn.initializers.zeros, (2,))
        skip = jnp.zeros_like(corr).at[:, :2].set(jnp.sum(g_an * scale, axis=1) + offset)
        f["analytic"] = g_an
        f["out"] = corr + skip
        return f if return_features else f["out"]

    def data_init(
        self, params: dict, images: np.ndarray, targets: np.ndarray, batch_size: int = 1024
    ) -> dict:
        """Set the residual read-out's ``g_scale``, ``g_offset`` to their least-squares values.

        The analytic shears have no parameters, so the best affine combination of
        them for each shear component (the targets as the trainer sees them,
        i.e. standardised) is a linear regression on the training stamps. Adam
        moves a parameter by about the learning rate per step, too slowly to
        find O(1) mixing weights in a few thousand steps; solving for them
        exactly leaves the network only the correction to learn. Deterministic;
        other parameters are returned unchanged. A no-op unless ``residual``.
        """
        if not self.residual:
            return params
        return affine_data_init(params, images, targets, self.psf_sigma_px, batch_size)

"""PSFNet: one PSF- and noise-aware, D4-equivariant network for every galaxy, PSF and noise level.

ShapeNet (:mod:`shearbridge.models.shapenet`) deconvolves a constant Gaussian PSF and is trained
per noise level. PSFNet is told, for every stamp, its PSF image and its pixel-noise sigma, and
its output transforms as a shear under the eight symmetries of the pixel grid *exactly*, by
construction rather than by augmentation:

* **spin-2 features** ``Z`` (each a pair that turns like a shear): the PSF-deconvolved
  adaptive-moment shears of the stamp at each weight of
  :data:`~shearbridge.models.moments.WEIGHT_FRACTIONS`, deconvolving the covariance measured on
  the stamp's own PSF image (:func:`~shearbridge.models.moments.psf_covariance`); the PSF's own
  shear; and the quadrupole moments (:class:`~shearbridge.models.shapenet.MomentPool`, centred on
  the stamp) of the PSF image and of every map of a small trunk of isotropic convolutions
  (:class:`IsoConv`: 3x3 kernels with the square's symmetry, so each map turns with the stamp);
* the analytic shears and the output are kept on the unit disk (:func:`unit_disk`);
* **invariant features** ``I``: log sizes and fluxes of the moments, the PSF's size and radial
  profile (moment-pool monopoles at three scales), the noise-to-signal ratio
  ``log(sigma_n / F_ap)``, the squared norm of every spin-2 feature and its projection on the
  analytic shear;
* **read-out**: ``g = sum_k a_k(I) Z_k`` with real coefficients ``a`` from an MLP of the
  (standardised) invariants. A real combination of spin-2 pairs with invariant weights is spin-2
  under rotations and mirrors, so the network needs no augmentation to respect the symmetry (the
  tests check it to float32 round-off);
* **uncertainty head**: a per-stamp ``log s = log(sigma_n / F_ap) + s_0 + MLP_u(I)`` (one sigma for
  both components: an invariant cannot tell them apart), from a *separate* MLP (parameters named
  :data:`UNCERTAINTY_PREFIX`) on the gradient-stopped invariants. Trained by the likelihood alone
  and clipped on its own: sharing the shear MLP's hidden layers, whose bound-weighted gradient is
  10^3-10^6 times larger, left it 2-6 times too wide (measured pull widths 0.17-0.53).

The analytic coefficients start at their least-squares values (:meth:`PSFNet.data_init`) and the
MLP's last layer at zero, so training starts at the moments-only estimator with each stamp's own
PSF. Output ``(B, 3)``: ``g1, g2, log s`` in label units (no standardisation: the labels are
shears).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.models.layers import LayerConfigError
from shearbridge.models.moments import (
    WEIGHT_FRACTIONS,
    adaptive_moments,
    distortion_to_shear,
    psf_covariance,
)
from shearbridge.models.shapenet import aperture_flux, moment_weight_maps

__all__ = ["PSFNet", "IsoConv", "iso_kernel", "psfnet_features", "unit_disk", "UNCERTAINTY_PREFIX"]

#: Parameters of the uncertainty head start with this: it reads gradient-stopped invariants and is
#: trained by the likelihood alone, with its own gradient clipping (:mod:`shearbridge.train.fresh`).
UNCERTAINTY_PREFIX = "unc_"

#: Moment-pool columns per scale (:func:`moment_weight_maps`): w, w x, w y, size, two spin-2.
_SCALAR_COLS, _SPIN2_COLS = (0, 3), (4, 5)


def iso_kernel(params: jax.Array) -> jax.Array:
    """A 3x3 kernel ``(3, 3, C_in, C_out)`` with the square's symmetry from ``(3, C_in, C_out)``:
    centre, edge and corner weights."""
    c, e, k = params[0], params[1], params[2]
    return jnp.stack([jnp.stack([k, e, k]), jnp.stack([e, c, e]), jnp.stack([k, e, k])])


class IsoConv(nn.Module):
    """A 3x3 convolution whose kernel is invariant under the eight symmetries of the square (SAME
    padding, optional dilation): the output map of a turned or mirrored input is the turned or
    mirrored output map."""

    features: int
    dilation: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = 9 * x.shape[-1]
        w = self.param(
            "kernel", nn.initializers.normal(np.sqrt(2.0 / fan_in)), (3, x.shape[-1], self.features)
        )
        b = self.param("bias", nn.initializers.zeros, (self.features,))
        y = jax.lax.conv_general_dilated(
            x,
            iso_kernel(w).astype(x.dtype),
            (1, 1),
            "SAME",
            rhs_dilation=(self.dilation, self.dilation),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return y + b


def unit_disk(g: jax.Array) -> jax.Array:
    """Shears ``(..., 2)`` pulled radially onto the unit disk (``|g| <= 1``, the range of a reduced
    shear), unchanged inside it. A radial map keeps the spin-2 symmetry. It matters at low S/N only:
    deconvolving a noisy, barely resolved galaxy's moments can give ``|g| >> 1`` (measured: up to
    7.6 at S/N ~10 without it)."""
    norm = jnp.sqrt(jnp.sum(g**2, axis=-1, keepdims=True) + 1e-30)
    return g * jnp.minimum(1.0, 1.0 / norm)


def _pool(maps: jax.Array, scales: Sequence[float]) -> tuple[jax.Array, jax.Array]:
    """Moment pooling of ``(B, S, S, C)`` maps: invariants ``(B, C * 2 * n_scales)`` and spin-2
    pairs ``(B, C * n_scales, 2)``."""
    w = moment_weight_maps(maps.shape[1], scales).reshape(-1, len(scales), 6)
    scalar = jnp.asarray(w[:, :, _SCALAR_COLS].reshape(w.shape[0], -1), maps.dtype)
    spin2 = jnp.asarray(w[:, :, _SPIN2_COLS].reshape(w.shape[0], -1), maps.dtype)
    flat = maps.reshape(maps.shape[0], -1, maps.shape[-1])
    inv = jnp.einsum("bpc,pm->bcm", flat, scalar).reshape(maps.shape[0], -1)
    z = jnp.einsum("bpc,pm->bcm", flat, spin2).reshape(maps.shape[0], -1, 2)
    return inv, z


def psfnet_features(
    x: jax.Array,
    psf: jax.Array,
    noise_sigma: jax.Array,
    scales: Sequence[float] = (1.5, 3.0, 6.0),
    aperture_px: float = 6.0,
    flux_floor: float = 1e-3,
) -> dict[str, jax.Array]:
    """The parameter-free features of PSFNet (module docstring): ``inv (B, M)``, ``z (B, K, 2)``,
    ``g_an (B, n_weights, 2)`` (the analytic shears), ``norm`` (the stamp divided by its aperture
    flux)."""
    x, psf = jax.lax.stop_gradient(x), jax.lax.stop_gradient(psf)
    pcov = psf_covariance(psf)
    e_psf = jnp.stack(distortion_to_shear(*pcov), axis=-1)
    g_an, inv = [], [jnp.log(pcov[0] + pcov[2])]
    for frac in WEIGHT_FRACTIONS:
        am = adaptive_moments(x, None, weight_fraction=frac, psf_cov=pcov)
        g_an.append(unit_disk(jnp.stack([am["g1"], am["g2"]], axis=-1)))
        inv += [am["log_t_gal"], am["log_t_obs"], am["log_flux_w"]]
    g_an = jnp.stack(g_an, axis=1)
    flux = jnp.sqrt(aperture_flux(x, aperture_px) ** 2 + flux_floor**2)
    log_nsr = jnp.log(jnp.asarray(noise_sigma, x.dtype) / flux)
    inv += [jnp.log(flux), log_nsr]
    psf_inv, psf_z = _pool(psf[..., None], scales)
    norm = x / flux[:, None, None] * (2 * np.pi * 3.0**2)
    return {
        "inv": jnp.concatenate([jnp.stack(inv, axis=-1), psf_inv], axis=-1),
        "z": jnp.concatenate([g_an, e_psf[:, None], psf_z], axis=1),
        "g_an": g_an,
        "norm": norm,
        "log_nsr": log_nsr,
    }


class PSFNet(nn.Module):
    """PSF- and noise-aware, D4-equivariant shear network (module docstring).

    Call as ``model.apply(params, stamps, psf_images, noise_sigma)`` with stamps and PSF images
    ``(B, S, S)`` and ``noise_sigma (B,)``; returns ``(B, 3)``: ``g1, g2, log s``.

    Attributes
    ----------
    channels, dilations : sequence of int
        The isotropic trunk: filters and dilation of each :class:`IsoConv`.
    scales_px : sequence of float
        Gaussian scales of the moment pooling (pixels).
    hidden, head_layers : int
        Width and depth of the MLP on the invariants.
    """

    channels: Sequence[int] = (8,)
    dilations: Sequence[int] = (1,)
    scales_px: Sequence[float] = (1.5, 3.0, 6.0)
    hidden: int = 64
    head_layers: int = 2

    @nn.compact
    def __call__(
        self, x: jax.Array, psf: jax.Array, noise_sigma: jax.Array, *, return_features: bool = False
    ) -> jax.Array | dict[str, jax.Array]:
        if x.ndim != 3 or x.shape[1] != x.shape[2] or x.shape[1] % 2 == 0 or psf.shape != x.shape:
            raise ValueError(
                f"PSFNet expects stamps and PSF images of one shape (B, S, S), S odd; got "
                f"{x.shape} and {psf.shape}"
            )
        if len(self.channels) != len(self.dilations) or self.head_layers < 1:
            raise LayerConfigError(
                "channels and dilations must have equal length, head_layers >= 1"
            )
        f = psfnet_features(x, psf, noise_sigma, self.scales_px)
        h = f["norm"][..., None]
        invs, zs = [], [f["z"]]
        inv0, z0 = _pool(h, self.scales_px)
        invs.append(inv0)
        zs.append(z0)
        for i, (c, d) in enumerate(zip(self.channels, self.dilations), start=1):
            h = jax.nn.gelu(IsoConv(c, d, name=f"iso{i}")(h))
            inv_i, z_i = _pool(h, self.scales_px)
            invs.append(inv_i)
            zs.append(z_i)
        z = jnp.concatenate(zs, axis=1)  # (B, K, 2)
        ref = f["g_an"][:, 0]
        inv = jnp.concatenate(
            [f["inv"], *invs, jnp.sum(z**2, axis=-1), jnp.einsum("bkc,bc->bk", z, ref)], axis=-1
        )
        mean = self.param("inv_mean", nn.initializers.zeros, (inv.shape[-1],))
        std = self.param("inv_std", nn.initializers.ones, (inv.shape[-1],))
        a = (inv - jax.lax.stop_gradient(mean)) / jax.lax.stop_gradient(std)
        a = jnp.clip(a, -10.0, 10.0)
        a_unc = jax.lax.stop_gradient(
            a
        )  # the uncertainty head's own input: no gradient reaches the shear path
        for j in range(1, self.head_layers + 1):
            a = jax.nn.gelu(nn.Dense(self.hidden, name=f"dense{j}")(a))
            a_unc = jax.nn.gelu(nn.Dense(self.hidden, name=f"{UNCERTAINTY_PREFIX}dense{j}")(a_unc))
        n_an = f["g_an"].shape[1]
        out = nn.Dense(z.shape[1], kernel_init=nn.initializers.zeros, name="out")(a)
        base = self.param("g_scale", nn.initializers.constant(1.0 / n_an), (n_an,))
        log_s0 = self.param(
            f"{UNCERTAINTY_PREFIX}log_s0", nn.initializers.constant(np.log(0.1)), ()
        )
        coef = out.at[:, :n_an].add(base)
        g = unit_disk(jnp.einsum("bk,bkc->bc", coef, z))
        # the uncertainty scales as noise / flux to first order (built in: an MLP output spanning
        # the grid's three decades would take most of training to grow); its own MLP learns the rest
        unc = nn.Dense(1, kernel_init=nn.initializers.zeros, name=f"{UNCERTAINTY_PREFIX}out")(
            a_unc
        )[:, 0]
        log_s = f["log_nsr"] + log_s0 + unc
        pred = jnp.concatenate([g, log_s[:, None]], axis=-1)
        if return_features:
            return {
                "inv": inv,
                "z": z,
                "coef": coef,
                "g_an": f["g_an"],
                "log_nsr": f["log_nsr"],
                "out": pred,
            }
        return pred

    def data_init(
        self,
        params: dict,
        stamps: np.ndarray,
        psfs: np.ndarray,
        noise_sigma: np.ndarray,
        g: np.ndarray,
        batch_size: int = 512,
    ) -> dict:
        """Standardise the invariants on these stamps, set the analytic scale to its least-squares
        value (one per moment weight, shared by both components) and the uncertainty to the rms
        residual. Deterministic; the stamps should be noisy training stamps."""
        fn = jax.jit(lambda p, a, b, c: self.apply(p, a, b, c, return_features=True))
        invs, gans, nsr = [], [], []
        for i in range(0, len(stamps), batch_size):
            sl = slice(i, i + batch_size)
            out = fn(
                params, jnp.asarray(stamps[sl]), jnp.asarray(psfs[sl]), jnp.asarray(noise_sigma[sl])
            )
            invs.append(np.asarray(out["inv"], np.float64))
            gans.append(np.asarray(out["g_an"], np.float64))
            nsr.append(np.asarray(out["log_nsr"]))
        inv, g_an, log_nsr = (
            np.concatenate(invs),
            np.concatenate(gans),
            np.concatenate(nsr).astype(np.float64),
        )
        p = dict(params["params"])
        p["inv_mean"] = jnp.asarray(inv.mean(0), jnp.float32)
        # a floor relative to the mean: a feature constant by construction (the normalised stamp's
        # aperture monopole) must not turn float32 round-off into O(1) inputs
        p["inv_std"] = jnp.asarray(
            np.maximum(inv.std(0), 1e-3 * np.abs(inv.mean(0)) + 1e-6), jnp.float32
        )
        design = np.concatenate(
            [g_an[:, :, 0], g_an[:, :, 1]]
        )  # (2N, n_weights), one scale for both components
        target = np.concatenate([g[:, 0], g[:, 1]]).astype(np.float64)
        scale, *_ = np.linalg.lstsq(design, target, rcond=None)
        p["g_scale"] = jnp.asarray(scale, jnp.float32)
        resid = (target - design @ scale).reshape(2, -1)
        # the median over stamps of log(|r| / (noise / flux)), per stamp the rms of both components
        ratio = 0.5 * np.log(np.mean(resid**2, axis=0) + 1e-30) - log_nsr
        p[f"{UNCERTAINTY_PREFIX}log_s0"] = jnp.asarray(np.median(ratio), jnp.float32)
        return {"params": p}

"""Differentiable JAX renderer of PSF-convolved, pixel-integrated elliptical galaxies.

The model is the one GalSim draws for ``galsim.Gaussian(sigma=size, flux=flux)
.shear(g1=g1, g2=g2)`` (or an exponential disc, see below), convolved with a PSF,
integrated over square pixels and shifted by ``(x0, y0)`` arcsec from the stamp
centre (GalSim ``drawImage(offset=(x0/scale, y0/scale))``, so ``x`` is the column
index, ``y`` the row index of the array).

It is rendered in Fourier space: the analytic Fourier transform of the sheared
galaxy, evaluated on the frequency grid of a zero-padded ``n_pad x n_pad`` image,
times a shift phase, times the transform of the effective PSF (PSF (x) pixel),
inverse real FFT, crop to ``S x S``. (Evaluating the inverse DFT on the stamp
pixels only, by two matrix products, gave identical images but was ~15% slower on
CPU.) The effective PSF is either

* a PSF *image* drawn like the galaxies (pixel response included) -- its DFT is
  used directly; it is normalised to unit sum; or
* an analytic Gaussian PSF times the pixel ``sinc`` (:meth:`Renderer.gaussian_psf`).

Accuracy: the only approximations are (1) power of the convolved profile above the
Nyquist frequency ``pi / scale`` (for ShearNet's PSF sigma 0.25", pixel 0.141" the
effective PSF's transform is ~1e-7 of its peak there), and (2) periodic images of
the galaxy ``n_pad`` pixels away (``n_pad`` = the power of two >= 2 S by default,
128 for S = 53: periodic copies are >= 102 px = 14" from the stamp centre; for a
Gaussian of major-axis sigma 2.8" that is a ~1e-6 effect at the stamp edge; with
``n_pad = 108`` the largest ~1% of ShearNet's galaxies were fitted with g errors up
to 3e-5 on noise-free stamps, with 128 below 2e-7). Heavy-tailed ``exp`` profiles
larger than ~1" need ``n_pad = 256`` for 1e-6 accuracy.

Parameters ``theta = (flux, x0, y0, size, g1, g2)``: flux in image units (the sum
over an unbounded stamp), ``x0, y0`` in arcsec, ``size`` in arcsec (the Gaussian
``sigma`` before shearing; for ``exp`` the half-light radius is
``size * sqrt(2 ln 2)``, as in :class:`shearbridge.config.SimConfig`), ``g1, g2``
reduced shear with ``|g| < 1``.

All computations run in float64 (inside ``jax.enable_x64(True)``, which does not
change the global JAX configuration).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import erf

__all__ = [
    "PARAM_NAMES",
    "MODELS",
    "EXP_HLR_PER_R0",
    "GAUSS_HLR_PER_SIGMA",
    "FourierGrid",
    "Renderer",
    "gaussian_psf_image",
    "model_image",
    "model_and_jacobian",
    "model_k",
    "inverse_crop",
]

PARAM_NAMES = ("flux", "x0", "y0", "size", "g1", "g2")
MODELS = ("gauss", "exp")
#: Half-light radius of an exponential disc in units of its scale radius.
EXP_HLR_PER_R0 = 1.6783469900166605
#: Half-light radius of a Gaussian in units of its sigma.
GAUSS_HLR_PER_SIGMA = math.sqrt(2.0 * math.log(2.0))


@jax.tree_util.register_pytree_node_class
class FourierGrid:
    """Constant arrays of one PSF / pixel scale / stamp size (a JAX pytree).

    ``psf_re, psf_im`` (N, M): rfft2 of the unit-sum effective PSF (N = n_pad,
    M = N//2+1); ``kx`` (1, M), ``ky`` (N, 1): angular frequencies (rad/arcsec);
    ``stamp_size`` (static): the side S of the output stamp.
    """

    def __init__(self, psf_re, psf_im, kx, ky, stamp_size: int) -> None:
        self.psf_re, self.psf_im, self.kx, self.ky = psf_re, psf_im, kx, ky
        self.stamp_size = int(stamp_size)

    def tree_flatten(self):
        return (self.psf_re, self.psf_im, self.kx, self.ky), (self.stamp_size,)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)


def _q_coefficients(shape: jax.Array) -> jax.Array:
    """``(size, g1, g2)`` -> coefficients of ``(kx^2, kx ky, ky^2)`` in ``q = size^2 |A k|^2``.

    ``A`` is the symmetric, unit-determinant shear matrix of ``galsim.Shear``; the
    transform of the sheared profile ``f(A^-1 x)`` is ``F(A k)``.
    """
    size, g1, g2 = shape[0], shape[1], shape[2]
    s2d = size * size / (1.0 - g1 * g1 - g2 * g2)
    return jnp.stack(
        [s2d * ((1 + g1) ** 2 + g2 * g2), s2d * 4.0 * g2, s2d * ((1 - g1) ** 2 + g2 * g2)]
    )


def _profile_and_logderiv(q: jax.Array, model: str) -> tuple[jax.Array, jax.Array]:
    """Unit-flux round-profile transform at ``q = (size |k|)^2`` and ``d log F / d q``."""
    if model == "gauss":
        return jnp.exp(-0.5 * q), jnp.full_like(q, -0.5)
    if model == "exp":
        c2 = (GAUSS_HLR_PER_SIGMA / EXP_HLR_PER_R0) ** 2
        base = 1.0 + c2 * q
        return base**-1.5, -1.5 * c2 / base
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def model_k(theta, grid: FourierGrid, model: str):
    """Real and imaginary parts (N, M) of the model transform, and derivative pieces."""
    flux, x0, y0 = theta[0], theta[1], theta[2]
    coef = _q_coefficients(theta[3:])
    kx, ky = grid.kx, grid.ky
    kxx, kxy, kyy = kx * kx, kx * ky, ky * ky
    prof, dlog = _profile_and_logderiv(coef[0] * kxx + coef[1] * kxy + coef[2] * kyy, model)
    # separable shift phase exp(-i (kx x0 + ky y0)) from 1-D cosines and sines
    cxr, cxi = jnp.cos(kx * x0), -jnp.sin(kx * x0)
    cyr, cyi = jnp.cos(ky * y0), -jnp.sin(ky * y0)
    ph_r = cxr * cyr - cxi * cyi
    ph_i = cxr * cyi + cxi * cyr
    amp = flux * prof
    mk_r = amp * (ph_r * grid.psf_re - ph_i * grid.psf_im)
    mk_i = amp * (ph_r * grid.psf_im + ph_i * grid.psf_re)
    return mk_r, mk_i, dlog, (kxx, kxy, kyy)


def inverse_crop(re: jax.Array, im: jax.Array, grid: FourierGrid) -> jax.Array:
    """Inverse real 2-D FFT of (..., N, M) cropped to the (..., S, S) stamp."""
    n_pad = grid.psf_re.shape[0]
    s = grid.stamp_size
    return jnp.fft.irfft2(jax.lax.complex(re, im), s=(n_pad, n_pad))[..., :s, :s]


def model_image(theta: jax.Array, grid: FourierGrid, model: str) -> jax.Array:
    """One noise-free stamp (S, S) for parameters ``theta`` (6,) -- pure JAX."""
    mk_r, mk_i, _, _ = model_k(theta, grid, model)
    return inverse_crop(mk_r, mk_i, grid)


def model_and_jacobian(
    theta: jax.Array,
    grid: FourierGrid,
    model: str,
    jac_dtype: Any = jnp.float64,
) -> tuple[jax.Array, jax.Array]:
    """Stamp (S, S) and its exact Jacobian d image / d theta, shape (6, S, S) -- pure JAX.

    Uses the analytic derivatives of the model transform (a log-derivative per
    parameter times the model: ``1/flux``, ``-i kx``, ``-i ky`` and
    ``dlogF/dq * dq/d(size, g1, g2)``); agrees with ``jax.jacfwd(model_image)``
    to rounding (tested). ``jac_dtype=jnp.float32`` computes the six derivative
    images in single precision (relative error ~1e-7, about twice as fast on
    CPU); the image itself is always float64.
    """
    mk_r, mk_i, dlog, (kxx, kxy, kyy) = model_k(theta, grid, model)
    dcoef = jax.jacfwd(_q_coefficients)(theta[3:])  # (3 coefficients, 3 shape params)
    kx = jnp.broadcast_to(grid.kx, mk_r.shape)
    ky = jnp.broadcast_to(grid.ky, mk_r.shape)
    real_factors = [
        dlog * (dcoef[0, j] * kxx + dcoef[1, j] * kxy + dcoef[2, j] * kyy) for j in range(3)
    ]
    res = jnp.stack([mk_r / theta[0], kx * mk_i, ky * mk_i] + [c * mk_r for c in real_factors])
    ims = jnp.stack([mk_i / theta[0], -kx * mk_r, -ky * mk_r] + [c * mk_i for c in real_factors])
    image = inverse_crop(mk_r, mk_i, grid)
    jac = inverse_crop(res.astype(jac_dtype), ims.astype(jac_dtype), grid)
    return image, jac.astype(image.dtype)


def gaussian_psf_image(
    sigma_arcsec: float,
    pixel_scale_arcsec: float,
    stamp_size: int,
) -> np.ndarray:
    """Exact pixel-integrated, unit-flux round Gaussian PSF image (S, S), float64.

    Centred on the stamp's true centre ``(S - 1) / 2`` (0-indexed), as GalSim's
    ``drawImage`` does; each pixel is the integral of the Gaussian over it (erf
    differences), i.e. what ``galsim.Gaussian(sigma).drawImage(scale=...)``
    approximates.
    """
    c = (stamp_size - 1) / 2.0
    x = (np.arange(stamp_size) - c) * pixel_scale_arcsec
    h = 0.5 * pixel_scale_arcsec
    s = sigma_arcsec * math.sqrt(2.0)
    one_d = 0.5 * (erf((x + h) / s) - erf((x - h) / s))
    return np.outer(one_d, one_d)


def fourier_frequencies(n_pad: int, pixel_scale: float) -> tuple[np.ndarray, np.ndarray]:
    kx = 2 * np.pi * np.fft.rfftfreq(n_pad, d=pixel_scale)[None, :]
    ky = 2 * np.pi * np.fft.fftfreq(n_pad, d=pixel_scale)[:, None]
    return kx, ky


class Renderer:
    """Render elliptical galaxies through one fixed effective PSF.

    Build with :meth:`from_psf_image` (general) or :meth:`gaussian_psf` (analytic).

    Attributes
    ----------
    model : str
        ``"gauss"`` or ``"exp"``.
    stamp_size : int
        Output stamp side S (pixels).
    n_pad : int
        DFT grid side (pixels), >= S.
    pixel_scale_arcsec : float
        Pixel size (arcsec).
    grid : FourierGrid
        The JAX arrays (float64) that :func:`model_image` needs.
    """

    def __init__(
        self, psf_k: np.ndarray, stamp_size: int, pixel_scale_arcsec: float, model: str, n_pad: int
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        self.model = model
        self.stamp_size = int(stamp_size)
        self.n_pad = int(n_pad)
        self.pixel_scale_arcsec = float(pixel_scale_arcsec)
        psf_k = np.asarray(psf_k, dtype=np.complex128)
        if psf_k.shape != (self.n_pad, self.n_pad // 2 + 1):
            raise ValueError(f"psf_k must have shape {(self.n_pad, self.n_pad // 2 + 1)}")
        self.psf_k_np = psf_k
        kx, ky = fourier_frequencies(self.n_pad, self.pixel_scale_arcsec)
        with jax.enable_x64(True):
            arrays = (jnp.asarray(a, dtype=jnp.float64) for a in (psf_k.real, psf_k.imag, kx, ky))
            self.grid = FourierGrid(*arrays, stamp_size=self.stamp_size)

    @staticmethod
    def default_n_pad(stamp_size: int) -> int:
        """The default DFT grid side: the smallest power of two >= 2 S (128 for S = 53)."""
        return 1 << (2 * int(stamp_size) - 1).bit_length()

    @classmethod
    def from_psf_image(
        cls,
        psf_image: np.ndarray,
        pixel_scale_arcsec: float,
        model: str = "gauss",
        n_pad: int | None = None,
    ) -> "Renderer":
        """Use a PSF image (S, S) that already contains the pixel response.

        The image is normalised to unit sum; its centre ``(S-1)/2`` is the centre of
        the rendered galaxies (``x0 = y0 = 0``), matching GalSim's ``drawImage``.
        """
        psf = np.asarray(psf_image, dtype=np.float64)
        if psf.ndim != 2 or psf.shape[0] != psf.shape[1]:
            raise ValueError(f"psf_image must be square (S, S), got shape {psf.shape}")
        total = psf.sum()
        if not np.isfinite(total) or total <= 0:
            raise ValueError(f"psf_image must have a positive finite sum, got {total}")
        s = psf.shape[0]
        n_pad = cls.default_n_pad(s) if n_pad is None else int(n_pad)
        if n_pad < s:
            raise ValueError(f"n_pad ({n_pad}) must be >= the stamp size ({s})")
        padded = np.zeros((n_pad, n_pad))
        padded[:s, :s] = psf / total
        return cls(np.fft.rfft2(padded), s, pixel_scale_arcsec, model, n_pad)

    @classmethod
    def gaussian_psf(
        cls,
        psf_sigma_arcsec: float,
        pixel_scale_arcsec: float,
        stamp_size: int,
        model: str = "gauss",
        n_pad: int | None = None,
    ) -> "Renderer":
        """Analytic round Gaussian PSF (sigma in arcsec) times the pixel ``sinc``."""
        if not psf_sigma_arcsec > 0:
            raise ValueError(f"psf_sigma_arcsec must be > 0, got {psf_sigma_arcsec}")
        n_pad = cls.default_n_pad(stamp_size) if n_pad is None else int(n_pad)
        kx, ky = fourier_frequencies(n_pad, pixel_scale_arcsec)
        p = pixel_scale_arcsec
        c = (stamp_size - 1) / 2.0 * p  # the stamp centre, arcsec from pixel 0
        psf_k = (
            np.exp(-0.5 * psf_sigma_arcsec**2 * (kx**2 + ky**2))
            * np.sinc(kx * p / (2 * np.pi))
            * np.sinc(ky * p / (2 * np.pi))
            * np.exp(-1j * (kx + ky) * c)
        )
        return cls(psf_k, stamp_size, pixel_scale_arcsec, model, n_pad)

    # ------------------------------------------------------------------ NumPy API
    def render(self, theta: np.ndarray) -> np.ndarray:
        """Noise-free stamps for parameters ``theta`` (6,) or (N, 6): (S, S) or (N, S, S)."""
        single = np.ndim(theta) == 1
        theta2 = self._check_theta(theta)
        with jax.enable_x64(True):
            out = np.asarray(_render_batch(jnp.asarray(theta2), self.grid, self.model))
        return out[0] if single else out

    def jacobian(self, theta: np.ndarray, method: str = "analytic") -> np.ndarray:
        """d image / d theta for (N, 6) parameters: shape (N, 6, S, S).

        ``method="analytic"`` uses :func:`model_and_jacobian`; ``"autodiff"`` uses
        ``jax.jacfwd`` of :func:`model_image` (a cross-check).
        """
        if method not in ("analytic", "autodiff"):
            raise ValueError(f"method must be 'analytic' or 'autodiff', got {method!r}")
        theta2 = self._check_theta(theta)
        fn = _jacobian_batch if method == "analytic" else _jacfwd_batch
        with jax.enable_x64(True):
            return np.asarray(fn(jnp.asarray(theta2), self.grid, self.model))

    @staticmethod
    def _check_theta(theta: np.ndarray) -> np.ndarray:
        theta2 = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        if theta2.ndim != 2 or theta2.shape[-1] != 6:
            raise ValueError(
                f"theta must have 6 columns {PARAM_NAMES}, got shape {np.shape(theta)}"
            )
        if np.any(np.hypot(theta2[:, 4], theta2[:, 5]) >= 1) or np.any(theta2[:, 3] <= 0):
            raise ValueError("theta needs |g| < 1 and size > 0 for every row")
        return theta2


@partial(jax.jit, static_argnames=("model",))
def _render_batch(theta, grid, model):
    return jax.vmap(lambda t: model_image(t, grid, model))(theta)


@partial(jax.jit, static_argnames=("model",))
def _jacobian_batch(theta, grid, model):
    return jax.vmap(lambda t: model_and_jacobian(t, grid, model)[1])(theta)


@partial(jax.jit, static_argnames=("model",))
def _jacfwd_batch(theta, grid, model):
    jac = jax.vmap(jax.jacfwd(lambda t: model_image(t, grid, model)))(theta)
    return jnp.moveaxis(jac, -1, 1)

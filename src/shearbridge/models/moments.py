"""Differentiable adaptive moments with analytic PSF deconvolution, in JAX (a network layer).

Adaptive moments (Bernstein & Jarvis 2002; Hirata & Seljak 2003) weight the
image with an elliptical Gaussian matched to the object. For a Gaussian image
of covariance ``C`` and centre ``mu`` and a Gaussian weight of covariance ``W``
and centre ``c``, the weighted image is again a Gaussian, with covariance
``C' = (C^-1 + W^-1)^-1`` whatever the two centres are. So the weighted central
second moments ``C'`` give the image covariance exactly,
``C = (C'^-1 - W^-1)^-1``, and subtracting the PSF covariance (a Gaussian PSF
of sigma ``psf_sigma_px`` plus the pixel's ``1/12 px^2``) gives the galaxy's
``C_gal``, whose distortion ``chi = (Cxx - Cyy, 2 Cxy) / (Cxx + Cyy)`` gives
the reduced shear ``g = chi / (1 + sqrt(1 - |chi|^2))``.

:func:`adaptive_moments` iterates the weight to the current estimate of ``C``
and its centre to the image centre implied by the weighted centroid a fixed number of times (no
data-dependent control flow, so it jits, vmaps and differentiates). It is
exact for the 2025 ShearNet galaxies (Gaussian galaxy, Gaussian PSF) up to
pixelisation and stamp truncation; for other profiles it is a biased but
still informative feature, which is why ShapeNet learns a correction on top
of it. Eigenvalues are clipped so that the output stays finite and
``|g| < 1`` on noise-dominated stamps.

Coordinates: pixels; ``x`` along the last image axis, ``y`` along the first,
origin at the stamp centre.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "adaptive_moments",
    "image_covariance",
    "psf_covariance",
    "moment_features",
    "sym2_inv",
    "sym2_clip",
    "distortion_to_shear",
    "MOMENT_KEYS",
    "WEIGHT_FRACTIONS",
]

MOMENT_KEYS = ("g1", "g2", "log_t_gal", "log_t_obs", "x0", "y0", "log_flux_w")


def sym2_inv(a: jax.Array, b: jax.Array, d: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Inverse of the symmetric 2x2 matrices ``[[a, b], [b, d]]`` (elementwise arrays)."""
    det = a * d - b * b
    return d / det, -b / det, a / det


def sym2_clip(
    a: jax.Array, b: jax.Array, d: jax.Array, lo: float, hi: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The matrices ``[[a, b], [b, d]]`` with eigenvalues clipped to ``[lo, hi]``."""
    half_tr = 0.5 * (a + d)
    r = jnp.sqrt(0.25 * (a - d) ** 2 + b * b + 1e-30)
    l1, l2 = half_tr + r, half_tr - r
    # unit eigenvector of l1: (cos t, sin t) with tan 2t = 2b / (a - d)
    two_t = jnp.arctan2(2 * b, a - d)
    c2, s2 = jnp.cos(two_t), jnp.sin(two_t)
    l1, l2 = jnp.clip(l1, lo, hi), jnp.clip(l2, lo, hi)
    m, h = 0.5 * (l1 + l2), 0.5 * (l1 - l2)
    return m + h * c2, h * s2, m - h * c2


def distortion_to_shear(
    cxx: jax.Array, cxy: jax.Array, cyy: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reduced shear ``g`` of the ellipse with covariance ``[[cxx, cxy], [cxy, cyy]]``.

    The covariance is positive definite.
    """
    t = cxx + cyy
    chi1, chi2 = (cxx - cyy) / t, 2 * cxy / t
    chi2sq = jnp.clip(chi1**2 + chi2**2, 0.0, 1.0 - 1e-7)
    k = 1.0 / (1.0 + jnp.sqrt(1.0 - chi2sq))
    return chi1 * k, chi2 * k


def image_covariance(
    images: jax.Array,
    n_iter: int = 4,
    init_sigma_px: float = 3.0,
    max_sigma_px: float = 20.0,
    weight_fraction: float = 1.0,
) -> tuple[jax.Array, ...]:
    """The adaptive-moment estimate of each stamp's covariance, before any PSF correction.

    Returns ``(Cxx, Cxy, Cyy, x0, y0, m0)``, arrays ``(B,)``: the image covariance implied by the
    weighted second moments (exact for a Gaussian image), its centre, and the weighted flux
    (parameters as :func:`adaptive_moments`).
    """
    size = images.shape[-1]
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - c
    X, Y = jnp.asarray(xx.ravel()), jnp.asarray(yy.ravel())
    img = images.reshape(images.shape[0], -1)
    bsz = images.shape[0]
    s0 = jnp.full((bsz,), init_sigma_px**2, images.dtype)
    wa, wb, wd = s0, jnp.zeros_like(s0), s0
    cx = cy = jnp.zeros_like(s0)
    lo, hi = 0.25, max_sigma_px**2
    m0 = jnp.ones_like(s0)
    ca, cb, cd = wa, wb, wd
    for _ in range(n_iter):
        ia, ib, id_ = sym2_inv(wa, wb, wd)
        dx, dy = X[None] - cx[:, None], Y[None] - cy[:, None]
        w = jnp.exp(-0.5 * (ia[:, None] * dx**2 + 2 * ib[:, None] * dx * dy + id_[:, None] * dy**2))
        wi = w * img
        m0 = jnp.sum(wi, axis=1)
        m0s = jnp.where(jnp.abs(m0) > 1e-12, m0, 1e-12)
        mx, my = jnp.sum(wi * dx, 1) / m0s, jnp.sum(wi * dy, 1) / m0s
        # central second moments of the weighted image (the product Gaussian's covariance C')
        pa = jnp.sum(wi * dx * dx, 1) / m0s - mx**2
        pb = jnp.sum(wi * dx * dy, 1) / m0s - mx * my
        pd = jnp.sum(wi * dy * dy, 1) / m0s - my**2
        pa, pb, pd = sym2_clip(pa, pb, pd, 1e-3, hi)
        # image covariance C = (C'^-1 - W^-1)^-1, kept positive definite and bounded
        qa, qb, qd = sym2_inv(pa, pb, pd)
        ra, rb, rd = qa - ia, qb - ib, qd - id_
        ra, rb, rd = sym2_clip(ra, rb, rd, 1.0 / hi, 1.0 / lo)
        ca, cb, cd = sym2_inv(ra, rb, rd)
        # next weight: the image covariance, centred on the weighted centroid
        wa, wb, wd = sym2_clip(
            weight_fraction * ca, weight_fraction * cb, weight_fraction * cd, lo, hi
        )
        # image centre from the weighted one:
        # C^-1 mu = C'^-1 mu' - W^-1 c  =>  mu = c + C C'^-1 delta
        vx, vy = qa * mx + qb * my, qb * mx + qd * my
        cx = jnp.clip(cx + ca * vx + cb * vy, -c / 2, c / 2)
        cy = jnp.clip(cy + cb * vx + cd * vy, -c / 2, c / 2)
    return ca, cb, cd, cx, cy, m0


def psf_covariance(
    psf_images: jax.Array, n_iter: int = 6
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The Gaussian-equivalent covariance ``(Cxx, Cxy, Cyy)`` (px^2) of each PSF image
    ``(B, S, S)``, pixel response included (:func:`image_covariance`: exact for a Gaussian, the
    matched-weight covariance of a Moffat or Kolmogorov profile); it is what
    :func:`adaptive_moments` subtracts as ``psf_cov``."""
    ca, cb, cd, *_ = image_covariance(psf_images, n_iter, init_sigma_px=2.0)
    return ca, cb, cd


def adaptive_moments(
    images: jax.Array,
    psf_sigma_px: float | jax.Array | None,
    n_iter: int = 4,
    init_sigma_px: float = 3.0,
    max_sigma_px: float = 20.0,
    weight_fraction: float = 1.0,
    pixel_var: float = 1.0 / 12.0,
    psf_cov: tuple[jax.Array, jax.Array, jax.Array] | None = None,
) -> dict[str, jax.Array]:
    """PSF-deconvolved adaptive-moment shape of each stamp ``(B, S, S)`` (image units).

    Parameters
    ----------
    images : array (B, S, S)
        Stamps; only ratios of weighted sums are used, so the flux scale is free.
    psf_sigma_px : float or array (B,) or None
        Gaussian PSF sigma in pixels (ShearNet 2025: 0.25 arcsec / 0.141 arcsec/px); ignored
        (pass None) when ``psf_cov`` is given.
    n_iter : int
        Weight updates (static). Four reach float32 round-off on noise-free Gaussians.
    init_sigma_px, max_sigma_px : float
        Round starting weight, and the largest weight / image sigma allowed (pixels).
    weight_fraction : float
        The weight's covariance is this fraction of the current image
        covariance (1: the matched weight, least noisy; smaller: less
        sensitive to the stamp edge for large galaxies, noisier).
    pixel_var : float
        Variance (px^2) of the Gaussian standing in for the pixel response, added to
        the PSF's before deconvolution (default ``1/12``, a unit box's; 0: no pixel).
    psf_cov : three arrays (B,), optional
        The PSF's covariance ``(Cxx, Cxy, Cyy)`` (px^2) per stamp, pixel included, e.g. the
        :func:`psf_covariance` of each stamp's PSF image: subtracted instead of
        ``psf_sigma_px^2 + pixel_var`` (an elliptical PSF, one per stamp).

    Returns
    -------
    dict of (B,) arrays
        ``g1, g2`` (galaxy reduced shear), ``log_t_gal`` and ``log_t_obs``
        (log of the trace of the galaxy's and the observed covariance, px^2),
        ``x0, y0`` (centroid, px from the stamp centre), ``log_flux_w``
        (log of the weighted flux, softened).
    """
    ca, cb, cd, cx, cy, m0 = image_covariance(
        images, n_iter, init_sigma_px, max_sigma_px, weight_fraction
    )
    hi = max_sigma_px**2
    if psf_cov is None:
        psf_var = psf_sigma_px**2 + pixel_var
        ga, gb, gd = sym2_clip(ca - psf_var, cb, cd - psf_var, 1e-2, hi)
    else:
        ga, gb, gd = sym2_clip(ca - psf_cov[0], cb - psf_cov[1], cd - psf_cov[2], 1e-2, hi)
    g1, g2 = distortion_to_shear(ga, gb, gd)
    return {
        "g1": g1,
        "g2": g2,
        "log_t_gal": jnp.log(ga + gd),
        "log_t_obs": jnp.log(ca + cd),
        "x0": cx,
        "y0": cy,
        "log_flux_w": jnp.log(jnp.sqrt(m0**2 + 1e-12)),
    }


#: weight fractions of :func:`moment_features`: the matched weight (least noisy) and a tighter
#: one (less sensitive to the stamp edge). Chosen on the trainer's validation split, never on test
#: galaxies: :func:`shearbridge.diagnosis.tuning.tune_weight_fractions` (the pipeline's tuning step
#: re-runs it, and the paper's numbers refuse to build if its choice differs from this constant).
WEIGHT_FRACTIONS = (1.0, 0.5)


def moment_features(images: jax.Array, psf_sigma_px: float, n_iter: int = 4) -> jax.Array:
    """:func:`adaptive_moments` at each of :data:`WEIGHT_FRACTIONS`, as a
    ``(B, len(WEIGHT_FRACTIONS) * len(MOMENT_KEYS))`` feature matrix (fraction-major),
    gradients stopped (the layer has no parameters)."""
    x = jax.lax.stop_gradient(images)
    cols = []
    for frac in WEIGHT_FRACTIONS:
        out = adaptive_moments(x, psf_sigma_px, n_iter, weight_fraction=frac)
        cols += [out[k] for k in MOMENT_KEYS]
    return jnp.stack(cols, axis=-1)

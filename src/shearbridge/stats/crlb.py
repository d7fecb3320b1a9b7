"""The physical limit: per-galaxy Fisher matrix and Cramer-Rao bound on g1, g2.

For a stamp ``I(theta)`` with white Gaussian pixel noise of standard deviation
``sigma_n``, the Fisher matrix over ``theta = (flux, x0, y0, size, g1, g2)`` is

    F_ij = sum_pixels dI/dtheta_i dI/dtheta_j / sigma_n^2,

and any unbiased estimator of ``g_k`` has variance >= ``(F^-1)_kk``: the nuisance
parameters (flux, centroid, size) are *marginalised* (free), not held fixed. The
derivatives come from ``jax.jacfwd`` of the JAX renderer (:mod:`.render`), or from
its analytic Jacobian (identical to rounding), or -- as an independent
cross-check -- from central differences of GalSim images
(:func:`fisher_matrix_galsim`).

``F`` is proportional to ``1 / sigma_n^2``, so ``sigma_CRLB`` is linear in the
noise sigma: it is computed at ``sigma_n = 1`` and scaled.

Analytic limit (:func:`round_gaussian_sigma_g`): for a round Gaussian galaxy of
sigma ``s`` convolved with a Gaussian PSF of sigma ``s_psf`` (continuum, no pixel),
``dI/dg1 = I s^2 (x^2 - y^2) / s_obs^4`` with ``s_obs^2 = s^2 + s_psf^2``; it is
orthogonal to the derivatives in flux, size and centroid, so the marginalised and
the conditional bounds coincide and ``sigma(g_k) = 1 / (nu R)``, with the
matched-filter S/N ``nu = sqrt(sum I^2) / sigma_n`` and ``R = s^2 / s_obs^2``.
(For the distortion ``e = 2g`` at g = 0 the bound is ``2 / (nu R)``.)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Mapping

import galsim
import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.estimators.render import PARAM_NAMES, Renderer, model_and_jacobian, model_image

__all__ = [
    "matched_filter_snr",
    "fisher_matrix",
    "crlb_sigma",
    "crlb_for_dataset",
    "fisher_matrix_galsim",
    "round_gaussian_sigma_g",
    "renderer_for_sim",
    "LABEL_KEYS",
]

#: Label keys used by :func:`crlb_for_dataset` (in theta order).
LABEL_KEYS = ("flux", "dx_arcsec", "dy_arcsec", "size_arcsec", "g1", "g2")


@partial(jax.jit, static_argnames=("model", "method"))
def _fisher_batch(theta, grid, model, method):
    if method == "autodiff":
        fn = jax.jacfwd(lambda t: model_image(t, grid, model))
        jac = jnp.moveaxis(jax.vmap(fn)(theta), -1, 1)
    else:
        jac = jax.vmap(lambda t: model_and_jacobian(t, grid, model)[1])(theta)
    jac = jac.reshape(jac.shape[0], 6, -1)
    return jnp.einsum("bip,bjp->bij", jac, jac)


def fisher_matrix(
    theta: np.ndarray,
    renderer: Renderer,
    noise_sigma: float = 1.0,
    method: str = "autodiff",
    batch_size: int = 256,
    progress: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """Fisher matrices (N, 6, 6) over ``theta = (flux, x0, y0, size, g1, g2)``.

    Parameters
    ----------
    theta : ndarray (N, 6) or (6,)
        Parameters in the units of :mod:`.render` (arcsec for x0, y0, size).
    renderer : Renderer
        Fixes PSF, pixel scale, stamp size, galaxy model and padding.
    noise_sigma : float
        Pixel noise standard deviation (image units).
    method : {"autodiff", "analytic"}
        ``jax.jacfwd`` of the renderer, or its analytic Jacobian.
    batch_size : int
        Galaxies per compiled call (the last batch is padded).
    """
    if method not in ("autodiff", "analytic"):
        raise ValueError(f"method must be 'autodiff' or 'analytic', got {method!r}")
    if not (np.isfinite(noise_sigma) and noise_sigma > 0):
        raise ValueError(f"noise_sigma must be a positive number, got {noise_sigma!r}")
    theta2 = renderer._check_theta(theta)
    n = theta2.shape[0]
    bs = min(batch_size, n)
    out = []
    with jax.enable_x64(True):
        for start in range(0, n, bs):
            chunk = theta2[start : start + bs]
            m = chunk.shape[0]
            if m < bs:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], bs - m, axis=0)])
            fis = _fisher_batch(jnp.asarray(chunk), renderer.grid, renderer.model, method)
            out.append(np.asarray(fis)[:m])
            if progress is not None:
                progress(m)
    return np.concatenate(out) / noise_sigma**2


def crlb_sigma(fisher: np.ndarray) -> np.ndarray:
    """Marginalised Cramer-Rao bounds ``sqrt(diag(F^-1))``, shape (N, 6) for (N, 6, 6).

    Singular or non-finite Fisher matrices give NaN rows.
    """
    fisher = np.asarray(fisher, dtype=np.float64)
    out = np.full(fisher.shape[:-1], np.nan)
    for i, f in enumerate(fisher.reshape(-1, 6, 6)):
        if not np.all(np.isfinite(f)):
            continue
        # scale to unit diagonal before inverting: the parameters differ in units
        d = np.sqrt(np.diag(f))
        if np.any(d <= 0):
            continue
        try:
            cov = np.linalg.inv(f / np.outer(d, d)) / np.outer(d, d)
        except np.linalg.LinAlgError:
            continue
        diag = np.diag(cov)
        out.reshape(-1, 6)[i] = np.where(diag > 0, np.sqrt(np.abs(diag)), np.nan)
    return out


def renderer_for_sim(sim: Any, n_pad: int | None = None) -> Renderer:
    """A :class:`Renderer` for a :class:`shearbridge.config.SimConfig` (or a mapping).

    Gaussian PSFs are analytic (exact pixel ``sinc``); Moffat PSFs are drawn by
    GalSim (``drawImage`` with the pixel, float64). Galaxy models other than
    ``gauss`` and ``exp`` raise ValueError: the JAX renderer has no Sersic profile.
    """
    get = (lambda k: sim[k]) if isinstance(sim, Mapping) else (lambda k: getattr(sim, k))
    galaxy = get("galaxy")
    if galaxy not in ("gauss", "exp"):
        raise ValueError(f"the JAX renderer supports galaxy 'gauss' or 'exp', not {galaxy!r}")
    scale = float(get("pixel_scale_arcsec"))
    size = int(get("stamp_size_px"))
    if get("psf") == "gauss":
        return Renderer.gaussian_psf(
            float(get("psf_sigma_arcsec")), scale, size, model=galaxy, n_pad=n_pad
        )
    if get("psf") == "moffat":
        psf = galsim.Moffat(beta=float(get("moffat_beta")), fwhm=float(get("psf_fwhm_arcsec")))
        img = psf.drawImage(nx=size, ny=size, scale=scale, dtype=np.float64).array
        return Renderer.from_psf_image(img, scale, model=galaxy, n_pad=n_pad)
    raise ValueError(f"psf must be 'gauss' or 'moffat', got {get('psf')!r}")


def crlb_for_dataset(
    labels: Mapping[str, np.ndarray],
    sim: Any,
    noise_sigma: float,
    method: str = "autodiff",
    batch_size: int = 256,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, np.ndarray]:
    """Per-galaxy Cramer-Rao bounds on g1 and g2 for a labelled dataset.

    Parameters
    ----------
    labels : mapping
        Arrays ``g1, g2`` (reduced shear), ``size_arcsec`` (Gaussian sigma),
        ``flux``, ``dx_arcsec, dy_arcsec`` (centroid offsets), all of length N.
    sim : SimConfig or mapping
        Needs ``galaxy, psf, psf_sigma_arcsec, psf_fwhm_arcsec, moffat_beta,
        pixel_scale_arcsec, stamp_size_px``.
    noise_sigma : float
        Pixel noise sigma; the bound is computed at 1 and scaled linearly.

    Returns
    -------
    dict
        ``sigma_g1, sigma_g2`` (N,), plus ``sigma_flux, sigma_x0, sigma_y0,
        sigma_size`` (arcsec for the last three) and ``noise_sigma``.
    """
    missing = [k for k in LABEL_KEYS if k not in labels]
    if missing:
        raise ValueError(f"labels lack {missing} (need {list(LABEL_KEYS)})")
    theta = np.stack(
        [np.asarray(labels[k], dtype=np.float64).reshape(-1) for k in LABEL_KEYS], axis=1
    )
    if not np.all(np.isfinite(theta)):
        raise ValueError("labels contain NaN or inf")
    if not (np.isfinite(noise_sigma) and noise_sigma > 0):
        raise ValueError(f"noise_sigma must be a positive number, got {noise_sigma!r}")
    rend = renderer_for_sim(sim)
    sig = crlb_sigma(
        fisher_matrix(theta, rend, 1.0, method=method, batch_size=batch_size, progress=progress)
    )
    sig = sig * noise_sigma
    out = {f"sigma_{name}": sig[:, i] for i, name in enumerate(PARAM_NAMES)}
    out["noise_sigma"] = np.float64(noise_sigma)
    return out


def fisher_matrix_galsim(
    theta: np.ndarray,
    psf: galsim.GSObject,
    pixel_scale_arcsec: float,
    stamp_size: int,
    noise_sigma: float = 1.0,
    model: str = "gauss",
    rel_step: float = 1e-3,
    gsparams: galsim.GSParams | None = None,
) -> np.ndarray:
    """Fisher matrix (6, 6) of one galaxy from central differences of GalSim images.

    An independent cross-check of :func:`fisher_matrix` (float64 images; steps:
    ``rel_step`` times the flux and size, ``rel_step`` arcsec in x0, y0 and
    ``rel_step`` in g1, g2). Truncation error is O(step^2).
    """
    theta = np.asarray(theta, dtype=np.float64)

    def draw(t: np.ndarray) -> np.ndarray:
        flux, x0, y0, size, g1, g2 = t
        if model == "gauss":
            gal = galsim.Gaussian(sigma=size, flux=flux, gsparams=gsparams)
        elif model == "exp":
            gal = galsim.Exponential(
                half_light_radius=size * np.sqrt(2 * np.log(2)), flux=flux, gsparams=gsparams
            )
        else:
            raise ValueError(f"model must be 'gauss' or 'exp', got {model!r}")
        obj = galsim.Convolve(gal.shear(g1=g1, g2=g2), psf, gsparams=gsparams)
        img = obj.drawImage(
            nx=stamp_size,
            ny=stamp_size,
            scale=pixel_scale_arcsec,
            offset=(x0 / pixel_scale_arcsec, y0 / pixel_scale_arcsec),
            dtype=np.float64,
        )
        return img.array.reshape(-1)

    steps = rel_step * np.array([theta[0], 1.0, 1.0, theta[3], 1.0, 1.0])
    jac = np.empty((6, stamp_size * stamp_size))
    for i in range(6):
        dt = np.zeros(6)
        dt[i] = steps[i]
        jac[i] = (draw(theta + dt) - draw(theta - dt)) / (2 * steps[i])
    return jac @ jac.T / noise_sigma**2


def round_gaussian_sigma_g(
    image: np.ndarray, size_arcsec: float, psf_sigma_arcsec: float, noise_sigma: float
) -> float:
    """Analytic bound ``1 / (nu R)`` for a round Gaussian galaxy and Gaussian PSF.

    ``nu = sqrt(sum image^2) / noise_sigma`` is the matched-filter S/N of the given
    noise-free stamp, ``R = s^2 / (s^2 + s_psf^2)``. Exact in the continuum limit
    (pixel much smaller than the PSF); see the module docstring.
    """
    nu = float(np.sqrt(np.sum(np.asarray(image, dtype=np.float64) ** 2))) / noise_sigma
    r = size_arcsec**2 / (size_arcsec**2 + psf_sigma_arcsec**2)
    return 1.0 / (nu * r)


def matched_filter_snr(clean: np.ndarray, noise_sigma: float) -> np.ndarray:
    """Matched-filter S/N of each noise-free stamp ``(N, S, S)`` in white noise of pixel sigma
    ``noise_sigma``: ``sqrt(sum(I^2)) / sigma`` (the S/N of the flux measured with the exact profile
    as the filter; the flux's Fisher information is ``sum(I^2) / (F^2 sigma^2)``). ShearNet's
    ``F / (L sigma)`` (``L`` the stamp side) is a different, smaller number."""
    clean = np.asarray(clean, np.float64)
    if clean.ndim != 3 or not noise_sigma > 0:
        raise ValueError(
            "matched_filter_snr needs stamps (N, S, S) and sigma > 0, "
            f"got {clean.shape}, {noise_sigma}"
        )
    return np.sqrt(np.sum(clean**2, axis=(1, 2))) / noise_sigma

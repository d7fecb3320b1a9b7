"""Cramér–Rao bounds of a survey-like population (:mod:`shearbridge.sim.population`).

Every stamp has its own galaxy family and its own PSF. For each row the Fisher matrix at unit
pixel noise is built over ``theta = (flux, dx_arcsec, dy_arcsec, size_arcsec, g1, g2)``
(:data:`~shearbridge.stats.crlb.LABEL_KEYS`), and the bound is the *marginalised*
``sqrt(diag(F^-1))``: all six parameters are free (unknown), so the flux, centroid and size
cost shear information. Everything else is fixed and known: the PSF (family, FWHM, ellipticity,
Moffat index), the pixel scale and stamp size, the galaxy family and its profile parameters
(``sersic_n`` of a Sersic galaxy, ``bulge_fraction`` and the bulge-to-disk size ratio of a
bulge+disk galaxy). ``F`` scales as ``1 / sigma_n^2``, so the bound for pixel noise ``sigma_n``
is the returned one times ``sigma_n``.

Two paths:

* ``gauss`` and ``exp`` galaxies: ``jax.jacfwd`` of the Fourier renderer
  (:func:`shearbridge.estimators.render.model_image`) with each row's own PSF image, rows of
  different PSFs batched into one compiled call (vmapped over theta and the PSF transform). The
  PSF image (GalSim ``drawImage`` of the unit-flux PSF, pixel included) is *not* renormalised to
  unit sum: the stamp holds only part of a PSF's wings (99.95% for a Moffat of beta 3.5, ~99.4% for
  a Kolmogorov), and :meth:`Renderer.from_psf_image`'s renormalisation would scale every model by
  ``1 / sum`` and lower the bounds by ``1 - sum`` (measured: -0.05% Moffat, -0.6% Kolmogorov
  against GalSim finite differences; without it they agree to ~1e-5).
* ``sersic`` and ``bulge_disk`` galaxies: finite differences of GalSim stamps (the flux derivative
  exact, the others forward differences: six renders per galaxy, half the central scheme's, within
  ~1e-3 of its bound;
  :func:`~shearbridge.stats.crlb_fd.fisher_fd_render` of
  :func:`shearbridge.sim.population.render_stamp`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.estimators.render import FourierGrid, Renderer, fourier_frequencies, model_image
from shearbridge.sim.population import (
    GALAXY_FAMILIES,
    POPULATION_LABELS,
    PSF_FAMILIES,
    PopulationConfig,
    render_psf_image,
    render_stamp,
)
from shearbridge.stats.crlb import LABEL_KEYS, crlb_sigma
from shearbridge.stats.crlb_fd import fisher_fd_render

__all__ = ["AUTODIFF_FAMILIES", "fisher_population_autodiff", "population_crlb"]

#: Galaxy families whose Fisher matrix comes from the JAX renderer; the others use finite
#: differences.
AUTODIFF_FAMILIES = ("gauss", "exp")


@partial(jax.jit, static_argnames=("model", "stamp_size"))
def _fisher_rows(theta, psf_re, psf_im, kx, ky, model, stamp_size):
    """Fisher matrices (B, 6, 6) of B rows, each with its own PSF transform (B, N, M)."""

    def one(t, pre, pim):
        grid = FourierGrid(pre, pim, kx, ky, stamp_size)
        jac = jax.jacfwd(lambda x: model_image(x, grid, model))(t).reshape(-1, 6)
        return jac.T @ jac

    return jax.vmap(one)(theta, psf_re, psf_im)


def _psf_k(cfg: PopulationConfig, row: Mapping[str, float], n_pad: int) -> np.ndarray:
    """rfft2 of the row's PSF image (pixel included, not renormalised) zero-padded to ``n_pad``."""
    size = cfg.sim.stamp_size_px
    padded = np.zeros((n_pad, n_pad))
    padded[:size, :size] = render_psf_image(cfg, row)
    return np.fft.rfft2(padded)


def fisher_population_autodiff(
    cfg: PopulationConfig,
    rows: Sequence[Mapping[str, float]],
    model: str,
    *,
    batch_size: int = 64,
    progress: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """Fisher matrices (len(rows), 6, 6) at unit noise of ``gauss`` or ``exp`` rows (``model``),
    by ``jax.jacfwd`` of the Fourier renderer with each row's own PSF (module docstring);
    ``batch_size`` rows per compiled call (the last batch is padded), ``progress(m)`` after each."""
    if model not in AUTODIFF_FAMILIES:
        raise ValueError(f"model must be one of {AUTODIFF_FAMILIES}, got {model!r}")
    size, n = cfg.sim.stamp_size_px, len(rows)
    if n == 0:
        return np.empty((0, 6, 6))
    n_pad = Renderer.default_n_pad(size)
    kx, ky = fourier_frequencies(n_pad, cfg.sim.pixel_scale_arcsec)
    bs = max(1, min(int(batch_size), n))
    out = []
    with jax.enable_x64(True):
        kx_j, ky_j = jnp.asarray(kx), jnp.asarray(ky)
        for start in range(0, n, bs):
            chunk = list(rows[start : start + bs])
            m = len(chunk)
            chunk += [chunk[-1]] * (bs - m)
            theta = np.array([[float(r[k]) for k in LABEL_KEYS] for r in chunk])
            psf_k = np.stack([_psf_k(cfg, r, n_pad) for r in chunk[:m]])
            psf_k = np.concatenate([psf_k, np.repeat(psf_k[-1:], bs - m, axis=0)])
            fis = _fisher_rows(
                jnp.asarray(theta),
                jnp.asarray(psf_k.real),
                jnp.asarray(psf_k.imag),
                kx_j,
                ky_j,
                model,
                size,
            )
            out.append(np.asarray(fis)[:m])
            if progress is not None:
                progress(m)
    return np.concatenate(out)


def _check(
    labels: Mapping[str, np.ndarray], rows: Sequence[int] | range | np.ndarray | None
) -> np.ndarray:
    """The row indices, after validating ``labels`` (one ValueError per problem)."""
    missing = [k for k in POPULATION_LABELS if k not in labels]
    if missing:
        raise ValueError(f"population labels lack {missing} (need {list(POPULATION_LABELS)})")
    lengths = {k: np.shape(labels[k]) for k in POPULATION_LABELS}
    n = len(np.asarray(labels["g1"]).reshape(-1))
    if any(shape != (n,) for shape in lengths.values()):
        raise ValueError(
            f"population labels must be 1-D arrays of one length, got shapes {lengths}"
        )
    idx = np.arange(n) if rows is None else np.asarray(rows).reshape(-1)
    if idx.size and (idx.dtype.kind not in "iu" or idx.min() < -n or idx.max() >= n):
        raise ValueError(f"rows must be integer indices into {n} rows, got {np.asarray(rows)!r}")
    idx = idx.astype(np.int64) % max(n, 1)
    bad = [
        k
        for k in POPULATION_LABELS
        if not np.all(np.isfinite(np.asarray(labels[k], np.float64)[idx]))
    ]
    if bad:
        raise ValueError(f"population labels {bad} contain NaN or inf in the requested rows")
    lab = {k: np.asarray(labels[k], np.float64)[idx] for k in ("flux", "size_arcsec", "g1", "g2")}
    if (
        np.any(lab["flux"] <= 0)
        or np.any(lab["size_arcsec"] <= 0)
        or np.any(np.hypot(lab["g1"], lab["g2"]) >= 1)
    ):
        raise ValueError(
            "population labels need flux > 0, size_arcsec > 0 and |g| < 1 in every requested row"
        )
    for key, names in (("galaxy_id", GALAXY_FAMILIES), ("psf_id", PSF_FAMILIES)):
        ids = np.asarray(labels[key], np.float64)[idx]
        if np.any((ids != np.round(ids)) | (ids < 0) | (ids >= len(names))):
            raise ValueError(f"{key} must index {names}, got {sorted(set(ids.tolist()))}")
    return idx


def population_crlb(
    cfg: PopulationConfig,
    labels: Mapping[str, np.ndarray],
    rows: Sequence[int] | range | np.ndarray | None = None,
    *,
    progress: Callable[[int], Any] | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Marginalised Cramér–Rao bounds at unit pixel noise of a population's rows.

    Parameters
    ----------
    cfg : PopulationConfig
        The population (pixel scale, stamp size, Moffat index).
    labels : mapping
        Arrays of :data:`~shearbridge.sim.population.POPULATION_LABELS`, all of length N.
    rows : sequence of int, optional
        The rows to bound, in this order (default: all N).
    progress : callable, optional
        ``progress(m)`` after every ``m`` rows done.
    batch_size : int
        Rows per compiled call of the autodiff path (``gauss``, ``exp``).

    Returns
    -------
    ndarray (len(rows), 6)
        ``sigma`` of ``(flux, dx_arcsec, dy_arcsec, size_arcsec, g1, g2)``
        (:data:`~shearbridge.stats.crlb.LABEL_KEYS`); multiply by the pixel noise sigma. NaN
        where the Fisher matrix is singular.

    Raises
    ------
    ValueError
        Missing labels, labels of unequal lengths, NaN or inf, bad rows, flux or size <= 0,
        ``|g| >= 1``, or an unknown ``galaxy_id``.
    """
    cfg.validate()
    idx = _check(labels, rows)
    table = [{k: labels[k][i] for k in POPULATION_LABELS} for i in idx]
    family = np.array([GALAXY_FAMILIES[int(r["galaxy_id"])] for r in table])
    fisher = np.empty((len(idx), 6, 6))
    for model in AUTODIFF_FAMILIES:
        sel = np.flatnonzero(family == model)
        if sel.size:
            fisher[sel] = fisher_population_autodiff(
                cfg, [table[j] for j in sel], model, batch_size=batch_size, progress=progress
            )
    for j in np.flatnonzero(~np.isin(family, AUTODIFF_FAMILIES)):
        fisher[j] = fisher_fd_render(lambda r: render_stamp(cfg, r), table[j], central=False)
        if progress is not None:
            progress(1)
    return crlb_sigma(fisher) if len(idx) else np.empty((0, 6))

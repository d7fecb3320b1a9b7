"""The Cramér–Rao bound of any GalSim-rendered galaxy, by central finite differences (pure).

Every parameter ``theta = (flux, dx, dy, size, g1, g2)`` is free (:data:`FD_LABEL_KEYS`);
the Fisher matrix is built from finite differences of the dataset's own GalSim renderer
(:func:`shearbridge.sim.stamps.render_clean`). The stamp is linear in the flux, so that derivative
is exact (the stamp over its flux); the others are central differences (two renders per parameter,
eleven in all) or, with ``central=False``, forward differences from the same stamp (one per
parameter, six). Steps: ``rel_step`` times the size, ``rel_step`` arcsec in dx, dy and ``rel_step``
in g1, g2. Forward differences carry a truncation error O(step): on Sersic and bulge+disk galaxies
through Moffat and Kolmogorov PSFs their bounds on g differ from the central ones by at most ~1e-3
(relative; the population study uses them, :mod:`shearbridge.stats.crlb_population`); the tests
check the Gaussian case against the autodiff bound of :mod:`shearbridge.stats.crlb`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["FD_LABEL_KEYS", "fisher_fd", "fisher_fd_render", "crlb_fd"]

#: Labels perturbed by the finite differences (theta order); dx, dy, size in arcsec.
FD_LABEL_KEYS = ("flux", "dx_arcsec", "dy_arcsec", "size_arcsec", "g1", "g2")


def fisher_fd(
    sim: Any,
    row: Mapping[str, float],
    noise_sigma: float = 1.0,
    rel_step: float = 1e-3,
    central: bool = True,
) -> np.ndarray:
    """Fisher matrix (6, 6) of one galaxy from central differences of its GalSim stamp.

    Parameters
    ----------
    sim : SimConfig
        The dataset's simulation (galaxy model, PSF, pixel scale, stamp size).
    row : mapping
        One population row (:func:`shearbridge.sim.stamps.draw_population` labels: ``flux``,
        ``dx_arcsec``, ``dy_arcsec``, ``size_arcsec`` (equivalent Gaussian sigma,
        arcsec), ``g1``, ``g2`` (reduced shear), ``model_id``).
    noise_sigma : float
        White pixel-noise standard deviation (image units).
    rel_step : float
        Steps: ``rel_step`` arcsec, ``rel_step * size``, ``rel_step`` in g.
    central : bool
        Central (default) or forward differences (module docstring).

    Returns
    -------
    ndarray (6, 6)
        Over ``theta = (flux, dx, dy, size, g1, g2)`` (order of :data:`FD_LABEL_KEYS`).
    """
    from shearbridge.sim.stamps import render_clean

    if not (np.isfinite(noise_sigma) and noise_sigma > 0):
        raise ValueError(f"noise_sigma must be a positive number, got {noise_sigma!r}")
    return fisher_fd_render(lambda r: render_clean(sim, r), row, rel_step, central) / noise_sigma**2


def fisher_fd_render(
    render: Callable[[Mapping[str, float]], np.ndarray],
    row: Mapping[str, float],
    rel_step: float = 1e-3,
    central: bool = True,
) -> np.ndarray:
    """Fisher matrix (6, 6) at unit pixel noise from finite differences of any renderer whose stamp
    is linear in ``flux`` (module docstring).

    Parameters
    ----------
    render : callable
        ``render(row) -> ndarray``: the noise-free stamp of a row (e.g. a GalSim renderer).
    row : mapping
        The labels; the keys of :data:`FD_LABEL_KEYS` are perturbed, the others passed unchanged.
    rel_step : float
        Steps: ``rel_step`` arcsec in dx, dy, ``rel_step * size``, ``rel_step`` in g1, g2.
    central : bool
        Central differences (truncation error O(step^2), two renders per parameter; default) or
        forward ones (O(step), one render per parameter).

    Returns
    -------
    ndarray (6, 6)
        Over ``theta = (flux, dx_arcsec, dy_arcsec, size_arcsec, g1, g2)``.
    """
    if not 0 < rel_step < 0.05:
        raise ValueError(f"rel_step must lie in (0, 0.05), got {rel_step!r}")
    theta = np.array([float(row[k]) for k in FD_LABEL_KEYS])
    steps = rel_step * np.array([theta[0], 1.0, 1.0, theta[3], 1.0, 1.0])
    base = np.asarray(render(row), np.float64)
    jac = [base.reshape(-1) / theta[0]]  # linear in the flux: exact
    for i, key in enumerate(FD_LABEL_KEYS[1:], start=1):
        plus, minus = dict(row), dict(row)
        plus[key], minus[key] = theta[i] + steps[i], theta[i] - steps[i]
        if central:
            diff = (
                np.asarray(render(plus), np.float64) - np.asarray(render(minus), np.float64)
            ) / 2.0
        else:
            diff = np.asarray(render(plus), np.float64) - base
        jac.append(diff.reshape(-1) / steps[i])
    jac = np.asarray(jac)
    return jac @ jac.T


def crlb_fd(
    sim: Any,
    labels: Mapping[str, np.ndarray],
    rows: Sequence[int] | range,
    rel_step: float = 1e-3,
    progress: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """Marginalised bounds ``sqrt(diag(F^-1))`` at unit noise, shape (len(rows), 6);
    ``progress(1)`` after each galaxy."""
    from shearbridge.stats.crlb import crlb_sigma

    fishers = []
    for i in rows:
        fishers.append(
            fisher_fd(sim, {k: np.asarray(v)[i] for k, v in labels.items()}, 1.0, rel_step)
        )
        if progress is not None:
            progress(1)
    return crlb_sigma(np.asarray(fishers))

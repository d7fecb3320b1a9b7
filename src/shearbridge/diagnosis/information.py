"""Per-layer Fisher information of trained networks on a set of galaxies, and its summaries.

The galaxies' side (:func:`galaxy_theta`, :func:`image_jacobian`, :func:`galaxy_window`,
:func:`window_capture`), the networks' side (:func:`network_information`: every analysed
layer at the noisy and the clean stamp) and the retained fractions summarised per noise
level (:func:`information_summary`, :func:`rcond_sensitivity`). The definitions are those of
:mod:`shearbridge.diagnosis.fisher`; everything here takes arrays and models, the pipeline
step :mod:`shearbridge.steps.diagnose` supplies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from shearbridge.config import noise_tag
from shearbridge.diagnosis.features import LAYERS, enhanced_feature_fn, feature_fn_for
from shearbridge.diagnosis.fisher import (
    DEFAULT_RCOND,
    MODES,
    PARAM_NAMES,
    layer_fisher,
    retained_fraction,
    shear_information,
)
from shearbridge.estimators.render import Renderer

__all__ = [
    "RCOND_SENSITIVITY",
    "galaxy_theta",
    "galaxy_window",
    "image_jacobian",
    "information_summary",
    "network_information",
    "rcond_sensitivity",
    "summarise",
    "window_capture",
]

#: Soft rank thresholds compared with :data:`~shearbridge.diagnosis.fisher.DEFAULT_RCOND`.
RCOND_SENSITIVITY = (1e-3, 1e-4, 1e-6, 1e-7)


# --------------------------------------------------------------------------- galaxies


def galaxy_theta(labels: Mapping[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Parameters ``(flux, x0, y0, size, g1, g2)`` (N, 6) of dataset rows ``idx`` (arcsec units)."""
    keys = ("flux", "dx_arcsec", "dy_arcsec", "size_arcsec", "g1", "g2")
    return np.stack([np.asarray(labels[k], np.float64)[idx] for k in keys], axis=1)


def image_jacobian(psf: np.ndarray, pixel_scale_arcsec: float, theta: np.ndarray) -> np.ndarray:
    """``G = d image / d theta`` (N, S, S, 6) by autodiff of the JAX renderer (Gaussian galaxies).

    ``psf`` is the dataset's PSF image (pixel response included); the renderer matches
    GalSim to ~1e-10 per pixel (see :mod:`shearbridge.estimators.render`).
    """
    psf = np.asarray(psf, np.float64)
    rend = Renderer.from_psf_image(psf, pixel_scale_arcsec, model="gauss")
    jac = np.asarray(rend.jacobian(np.atleast_2d(theta)))
    s = psf.shape[0]
    if jac.shape[1:] == (len(PARAM_NAMES), s, s):  # the renderer's (N, 6, S, S) layout
        jac = np.moveaxis(jac, 1, -1)
    if jac.shape[1:] != (s, s, len(PARAM_NAMES)):
        raise ValueError(f"unexpected renderer Jacobian shape {jac.shape}")
    return jac


def galaxy_window(
    theta: np.ndarray, stamp_size: int, pixel_scale_arcsec: float, w: int
) -> tuple[int, int]:
    """Top-left (row, column) of the ``w x w`` window centred on the galaxy's centroid pixel."""
    centre = (stamp_size - 1) / 2.0
    row = centre + float(theta[2]) / pixel_scale_arcsec  # y0 -> rows
    col = centre + float(theta[1]) / pixel_scale_arcsec  # x0 -> columns
    r0 = int(np.clip(round(row) - w // 2, 0, stamp_size - w))
    c0 = int(np.clip(round(col) - w // 2, 0, stamp_size - w))
    return r0, c0


def window_capture(G_full: np.ndarray, origin: tuple[int, int], w: int) -> dict[str, float]:
    """Fraction of the stamp's (g1, g2) information in a window ("marginal", "fixed" modes)."""
    gw = G_full[origin[0] : origin[0] + w, origin[1] : origin[1] + w].reshape(-1, G_full.shape[-1])
    g = G_full.reshape(-1, G_full.shape[-1])
    return {
        m: float(retained_fraction(gw.T @ gw, g.T @ g, m).mean()) for m in ("marginal", "fixed")
    }


# --------------------------------------------------------------------------- networks


def network_information(
    trained: Any,
    clean: np.ndarray,
    noise: np.ndarray,
    sigma: float,
    G_full: np.ndarray,
    windows: list[tuple[int, int]],
    w: int,
    *,
    rcond: float = DEFAULT_RCOND,
    progress=None,
) -> np.ndarray:
    """Per-layer information (unit noise) at the noisy and the clean stamps: (2, N, L, 6, 6).

    Layers as :func:`~shearbridge.diagnosis.features.feature_fn_for` lists them for
    ``trained.model``; ``progress`` (optional) gets ``update(1)`` per stamp.
    """
    fn, layers = feature_fn_for(trained.model, w)
    n = len(clean)
    out = np.zeros((2, n, len(layers), 6, 6))
    for i in range(n):
        r0, c0 = windows[i]
        g = G_full[i, r0 : r0 + w, c0 : c0 + w]
        for p, x in enumerate((clean[i] + sigma * noise[i], clean[i])):
            info = layer_fisher(fn, trained.params, x, g, (r0, c0), w, rcond=rcond)
            out[p, i] = np.stack([info[k] for k in layers])
            if progress is not None:
                progress.update(1)
    return out


def rcond_sensitivity(
    trained: Any,
    x: np.ndarray,
    G: np.ndarray,
    origin: tuple[int, int],
    w: int,
    F_image: np.ndarray,
    F_default: np.ndarray,
    rconds: tuple[float, ...] = RCOND_SENSITIVITY,
) -> dict[str, list[float]]:
    """Marginal retained fraction per layer of an EnhancedGalaxyNN at stamp ``x`` for each soft
    rank threshold ``rconds``, then for :data:`~shearbridge.diagnosis.fisher.DEFAULT_RCOND`
    (whose per-layer information ``F_default`` (L, 6, 6) is already known); keys ``f"{rcond:.0e}"``.
    ``G`` is the window's image derivatives and ``F_image`` their information."""
    sens = {}
    for rc in rconds:
        info = layer_fisher(
            enhanced_feature_fn(trained.model, w), trained.params, x, G, origin, w, rcond=rc
        )
        sens[f"{rc:.0e}"] = np.stack([info[k] for k in LAYERS])
    sens[f"{DEFAULT_RCOND:.0e}"] = F_default
    return {k: retained_fraction(v, F_image, "marginal").mean(-1).tolist() for k, v in sens.items()}


# --------------------------------------------------------------------------- summaries


def summarise(x: np.ndarray) -> dict[str, list[float]]:
    """Mean, median, 16th and 84th percentiles over galaxies (axis 0) -> per layer lists."""
    q = np.percentile(x, [16, 50, 84], axis=0)
    return {
        "mean": np.mean(x, axis=0).tolist(),
        "median": q[1].tolist(),
        "p16": q[0].tolist(),
        "p84": q[2].tolist(),
    }


def _ensemble(F_l: np.ndarray, F_img: np.ndarray, mode: str, prec: np.ndarray) -> list[float]:
    """Per layer: mean over galaxies and (g1, g2) of the image's CRLB variance over the mean of
    the layer's (0 where a layer has no information). ``F_l`` (N, L, 6, 6), ``F_img`` (N, 6, 6)."""
    ref = np.broadcast_to(F_img[:, None], F_l.shape)
    eff_l = shear_information(F_l, mode, reference=ref, prior_precision=prec)
    eff_i = shear_information(F_img, mode, reference=F_img, prior_precision=prec)
    with np.errstate(divide="ignore"):
        var_l = np.where(eff_l > 0, 1.0 / np.where(eff_l > 0, eff_l, 1.0), np.inf)
    return (np.mean(1.0 / eff_i) / var_l.mean(axis=(0, 2))).tolist()


def information_summary(
    F_layers: np.ndarray, F_win: np.ndarray, grid: tuple[float, ...], prior_prec: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Retained fractions (K, 2, N, L, 2) per mode and their per-tag summaries, from
    ``F_layers`` (K noise levels ``grid``, noisy/clean, N galaxies, L layers, 6, 6), the
    windows' information ``F_win`` (N, 6, 6) and the priors' precision at unit noise (6,)."""
    retained = {
        m: np.stack(
            [
                retained_fraction(F_layers[k], F_win[None, :, None], m, prior_prec * s**2)
                for k, s in enumerate(grid)
            ]
        )
        for m in MODES
    }
    information = {
        noise_tag(s): {
            pt: {m: summarise(retained[m][k, p].mean(-1)) for m in MODES}
            | {
                f"ensemble_{m}": _ensemble(F_layers[k, p], F_win, m, prior_prec * s**2)
                for m in MODES
            }
            for p, pt in enumerate(("noisy", "clean"))
        }
        for k, s in enumerate(grid)
    }
    return retained, information

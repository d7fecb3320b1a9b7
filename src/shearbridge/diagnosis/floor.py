"""What sets the low-noise error floor: error/CRLB against galaxy size and truncation.

Pure functions of arrays (no files; random generators or seeds are passed in):

* :func:`galaxy_quantities`: per galaxy, from the catalogue labels, the true size (the
  Gaussian sigma ``size_arcsec`` before shearing, :mod:`shearbridge.sim.stamps`; the
  half-light radius is ``sqrt(2 ln 2)`` times it) and the fraction of the PSF-convolved
  flux that falls outside the stamp (:func:`outside_flux_fraction`, exact for a Gaussian
  galaxy (x) Gaussian PSF up to quadrature);
* :func:`error_ratios`, :func:`bootstrap_ratios`, :func:`binned_ratios`: RMSE / RMS(CRLB)
  and two robust counterparts, each scaled so that errors drawn from the bound give 1;
* :func:`floor_experiment`: the moments-only estimator (the adaptive-moment shears of
  :func:`shearbridge.models.moments.adaptive_moments` with an affine read-out fitted on
  training stamps, as :meth:`shearbridge.models.shapenet.ShapeNet.data_init`) under
  variants of its numerics: float32/float64, the number of weight iterations, and the
  pixel's Gaussian stand-in (variance 1/12 px^2) or none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ndtr

from shearbridge.config import SimConfig
from shearbridge.models.moments import WEIGHT_FRACTIONS, adaptive_moments
from shearbridge.models.moments_affine import affine_lstsq
from shearbridge.models.predict import map_batches
from shearbridge.sim.stamps import HLR_PER_SIGMA

__all__ = [
    "Variant",
    "DEFAULT_VARIANTS",
    "MAD_GAUSS",
    "TRIM_GAUSS",
    "galaxy_quantities",
    "outside_flux_fraction",
    "error_ratios",
    "bootstrap_ratios",
    "binned_ratios",
    "moment_shears",
    "fit_affine",
    "apply_affine",
    "floor_experiment",
]

#: median of |z| for a standard normal z (Phi^-1(0.75)): |err|/CRLB is divided by it
MAD_GAUSS = 0.6744897501960817
_TRIM = 0.10  # fraction of the largest |err|/CRLB values left out of the trimmed RMS
_A = 1.6448536269514722  # Phi^-1(1 - _TRIM / 2): the trimmed |z| threshold
#: mean z^2 of a standard normal over |z| <= 1.645 (the 90% kept): the trimmed RMS^2 divisor
TRIM_GAUSS = (1 - _TRIM - 2 * _A * math.exp(-0.5 * _A**2) / math.sqrt(2 * math.pi)) / (1 - _TRIM)
_STATS = ("rms_ratio", "median_ratio", "trimmed_ratio")


def outside_flux_fraction(
    cov: np.ndarray, centre: np.ndarray, half_width: float, n_nodes: int = 96
) -> np.ndarray:
    """Fraction of a 2-d Gaussian's flux outside the square ``|x|, |y| <= half_width``.

    Parameters
    ----------
    cov : array (N, 2, 2)
        Covariances ``[[xx, xy], [xy, yy]]`` (px^2).
    centre : array (N, 2)
        Centres ``(x, y)`` (px) relative to the square's centre.
    half_width : float
        Half the side of the square (px); a stamp of ``S`` pixels has ``S / 2``.
    n_nodes : int
        Gauss-Legendre nodes over the standardised x range (clipped to +-12 sigma).

    Returns
    -------
    array (N,)
        ``1 - P(inside)``, where ``P = int phi(x) [Phi(y_hi | x) - Phi(y_lo | x)] dx``.
    """
    cov, centre = np.asarray(cov, np.float64), np.asarray(centre, np.float64)
    sx = np.sqrt(cov[:, 0, 0])
    rho = cov[:, 0, 1] / (sx * np.sqrt(cov[:, 1, 1]))
    sy_x = np.sqrt(cov[:, 1, 1] * (1 - rho**2))  # sigma of y given x
    lo = np.clip((-half_width - centre[:, 0]) / sx, -12, 12)
    hi = np.clip((half_width - centre[:, 0]) / sx, -12, 12)
    t, w = np.polynomial.legendre.leggauss(n_nodes)
    u = 0.5 * (hi - lo)[:, None] * (t[None] + 1) + lo[:, None]  # standardised x
    my = centre[:, 1:2] + (cov[:, 0, 1] / sx)[:, None] * u  # E[y | x]
    py = ndtr((half_width - my) / sy_x[:, None]) - ndtr((-half_width - my) / sy_x[:, None])
    inside = (
        0.5
        * (hi - lo)
        * np.sum(w[None] * np.exp(-0.5 * u**2) / math.sqrt(2 * math.pi) * py, axis=1)
    )
    return np.clip(1.0 - inside, 0.0, 1.0)


def galaxy_quantities(labels: Mapping[str, np.ndarray], sim: SimConfig) -> dict[str, np.ndarray]:
    """Per-galaxy size and out-of-stamp flux of a Gaussian-galaxy, Gaussian-PSF population.

    Returns
    -------
    dict of (N,) arrays
        ``size_px`` (the label ``size_arcsec``, the round Gaussian sigma, in pixels),
        ``hlr_arcsec`` (its half-light radius), ``obs_major_px`` (major-axis sigma of the
        sheared galaxy (x) PSF, px) and ``out_flux`` (fraction of that profile's flux
        outside the ``stamp_size_px`` square, offsets included; the pixel response
        does not change the sum over whole pixels).
    """
    if sim.galaxy != "gauss" or sim.psf != "gauss":
        raise ValueError(
            f"analytic out-of-stamp flux needs a Gaussian galaxy and PSF, "
            f"got galaxy={sim.galaxy!r}, psf={sim.psf!r}"
        )
    s = np.asarray(labels["size_arcsec"], np.float64)
    g1, g2 = np.asarray(labels["g1"], np.float64), np.asarray(labels["g2"], np.float64)
    # GalSim's shear matrix A = [[1 + g1, g2], [g2, 1 - g1]] / sqrt(1 - |g|^2), det 1
    k = s**2 / (1 - g1**2 - g2**2)
    cov = np.empty((len(s), 2, 2))
    cov[:, 0, 0] = k * ((1 + g1) ** 2 + g2**2) + sim.psf_sigma_arcsec**2
    cov[:, 1, 1] = k * ((1 - g1) ** 2 + g2**2) + sim.psf_sigma_arcsec**2
    cov[:, 0, 1] = cov[:, 1, 0] = k * 2 * g2
    scale = sim.pixel_scale_arcsec
    cov /= scale**2
    centre = np.stack([labels["dx_arcsec"], labels["dy_arcsec"]], axis=1) / scale
    return {
        "size_px": s / scale,
        "hlr_arcsec": s * HLR_PER_SIGMA,
        "obs_major_px": np.sqrt(np.linalg.eigvalsh(cov)[:, 1]),
        "out_flux": outside_flux_fraction(cov, centre, sim.stamp_size_px / 2.0),
    }


def error_ratios(err: np.ndarray, crlb: np.ndarray) -> dict[str, float]:
    """Error over bound of estimates ``err`` (N, 2) with per-galaxy bounds ``crlb`` (N, 2).

    ``rms_ratio``: RMSE / RMS(CRLB), the paper's ratio. ``median_ratio``: median of
    ``|err| / crlb`` over both components, divided by :data:`MAD_GAUSS`.
    ``trimmed_ratio``: RMS of ``err / crlb`` over the 90% smallest ``|err| / crlb``,
    divided by ``sqrt(TRIM_GAUSS)``. All three are 1 for errors ``N(0, crlb^2)``.
    """
    z = np.abs(err / crlb).ravel()
    kept = np.sort(z)[: max(1, int(round((1 - _TRIM) * z.size)))]
    return {
        "rms_ratio": float(np.sqrt(np.mean(err**2) / np.mean(crlb**2))),
        "median_ratio": float(np.median(z) / MAD_GAUSS),
        "trimmed_ratio": float(np.sqrt(np.mean(kept**2) / TRIM_GAUSS)),
    }


def bootstrap_ratios(
    err: np.ndarray, crlb: np.ndarray, rng: np.random.Generator, n_boot: int = 200
) -> dict[str, float]:
    """:func:`error_ratios` with bootstrap standard errors (``<stat>_err``; galaxies resampled,
    both components of a galaxy together), plus ``n``."""
    n = len(err)
    point = error_ratios(err, crlb)
    boots = [error_ratios(err[i], crlb[i]) for i in (rng.integers(0, n, n) for _ in range(n_boot))]
    out: dict[str, float] = {"n": n, **point}
    for k in _STATS:
        out[f"{k}_err"] = float(np.std([b[k] for b in boots], ddof=1))
    return out


def binned_ratios(
    err: np.ndarray,
    crlb: np.ndarray,
    x: np.ndarray,
    rng: np.random.Generator,
    edges: Sequence[float] | int = 5,
    n_boot: int = 200,
) -> list[dict[str, float]]:
    """:func:`bootstrap_ratios` in bins of ``x`` (N,): ``edges`` explicit, or that many
    equal-count bins. Each row also has ``lo``, ``hi`` (bin edges; a galaxy at the top
    edge goes to the last bin) and ``x_median``; empty bins are left out."""
    x = np.asarray(x, np.float64)
    e = (
        np.quantile(x, np.linspace(0, 1, edges + 1))
        if isinstance(edges, int)
        else np.asarray(edges, np.float64)
    )
    which = np.clip(np.searchsorted(e, x, side="right") - 1, 0, len(e) - 2)
    rows = []
    for b in range(len(e) - 1):
        m = (which == b) & (x >= e[0]) & (x <= e[-1])
        if m.any():
            rows.append(
                {
                    "lo": float(e[b]),
                    "hi": float(e[b + 1]),
                    "x_median": float(np.median(x[m])),
                    **bootstrap_ratios(err[m], crlb[m], rng, n_boot),
                }
            )
    return rows


@dataclass(frozen=True)
class Variant:
    """Numerics of the moments-only estimator: float64 or float32, weight iterations
    (``n_iter``), and the pixel's Gaussian variance added to the PSF's (``pixel_var``, px^2)."""

    name: str
    x64: bool = False
    n_iter: int = 4
    pixel_var: float = 1.0 / 12.0


#: the reference (ShapeNet's numerics) first, then one change at a time, then all of them
DEFAULT_VARIANTS = (
    Variant("reference"),
    Variant("float64", x64=True),
    Variant("n_iter=8", n_iter=8),
    Variant("n_iter=16", n_iter=16),
    Variant("no pixel", pixel_var=0.0),
    Variant("float64, n_iter=16", x64=True, n_iter=16),
)


def moment_shears(
    images: np.ndarray,
    psf_sigma_px: float,
    fractions: Sequence[float] = WEIGHT_FRACTIONS,
    variant: Variant = DEFAULT_VARIANTS[0],
    batch_size: int = 512,
) -> np.ndarray:
    """Adaptive-moment shears ``(N, len(fractions), 2)`` (float64 array) of stamps ``(N, S, S)``.

    The reference variant and :data:`WEIGHT_FRACTIONS` give ShapeNet's ``analytic_shears``.
    """

    def fn(x: jax.Array) -> jax.Array:
        outs = [
            adaptive_moments(
                x, psf_sigma_px, variant.n_iter, weight_fraction=f, pixel_var=variant.pixel_var
            )
            for f in fractions
        ]
        return jnp.stack([jnp.stack([o["g1"], o["g2"]], axis=-1) for o in outs], axis=1)

    dtype = np.float64 if variant.x64 else np.float32
    with jax.enable_x64(variant.x64):
        g = map_batches(jax.jit(fn), np.asarray(images, dtype), batch_size)
    return np.asarray(g, np.float64)


def fit_affine(g: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Least-squares ``(k + 1, 2)`` coefficients of ``targets[:, c] ~ sum_j a_jc g[:, j, c] + b_c``
    (``g`` (N, k, 2); last row ``b``), the read-out of ``ShapeNet.data_init`` in raw units."""
    scale, offset = affine_lstsq(g, targets)  # the one least-squares read-out of the package
    return np.vstack([scale, offset[None]])


def apply_affine(g: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """The read-out of :func:`fit_affine`'s ``coef`` on shears ``g`` (N, k, 2): ``(N, 2)``."""
    return np.einsum("nkc,kc->nc", g, coef[:-1]) + coef[-1]


def floor_experiment(
    train_images: np.ndarray,
    train_targets: np.ndarray,
    test_images: np.ndarray,
    test_targets: np.ndarray,
    crlb: np.ndarray,
    sizes: np.ndarray,
    psf_sigma_px: float,
    seed: int,
    variants: Sequence[Variant] = DEFAULT_VARIANTS,
    fractions: Sequence[float] = WEIGHT_FRACTIONS,
    drop_largest: float = 0.05,
    n_boot: int = 200,
) -> list[dict[str, Any]]:
    """The moments-only estimator under each variant: fitted on the training stamps, scored
    on the test stamps against their bound ``crlb`` (N, 2).

    Each variant gets its own affine read-out (:func:`fit_affine` on ``train_images``,
    ``train_targets`` (M, 2)). Rows: the variant's fields, ``subset`` (``"all"``, or
    ``"no_largest"`` without the ``drop_largest`` fraction of largest ``sizes``), ``rmse``
    and :func:`bootstrap_ratios` (resampled with ``default_rng(seed)``, the same galaxies for
    every variant), plus ``d_rms_ratio`` and ``d_rms_ratio_err``: the change against the
    first variant, with a paired bootstrap error.
    """
    keep = sizes <= np.quantile(sizes, 1.0 - drop_largest)
    subsets = {"all": np.ones(len(sizes), bool), "no_largest": keep}
    errs = []
    for v in variants:
        coef = fit_affine(moment_shears(train_images, psf_sigma_px, fractions, v), train_targets)
        errs.append(
            apply_affine(moment_shears(test_images, psf_sigma_px, fractions, v), coef)
            - test_targets
        )
    rows = []
    for name, m in subsets.items():
        e0, c = errs[0][m], crlb[m]
        n = int(m.sum())
        rng = np.random.default_rng(seed)
        idx = [rng.integers(0, n, n) for _ in range(n_boot)]  # the draws bootstrap_ratios makes

        def rms(e: np.ndarray, i: np.ndarray) -> float:
            return float(np.sqrt(np.mean(e[i] ** 2) / np.mean(c[i] ** 2)))

        for v, e in zip(variants, errs):
            e = e[m]
            delta = [rms(e, i) - rms(e0, i) for i in idx]
            rows.append(
                {
                    **asdict(v),
                    "subset": name,
                    "rmse": float(np.sqrt(np.mean(e**2))),
                    **bootstrap_ratios(e, c, np.random.default_rng(seed), n_boot),
                    "d_rms_ratio": rms(e, np.arange(n)) - rms(e0, np.arange(n)),
                    "d_rms_ratio_err": float(np.std(delta, ddof=1)),
                }
            )
    return rows

"""A survey-like population: several galaxy families, one PSF per stamp, held-out families.

ShearNet's 2025 data (:mod:`shearbridge.sim.stamps`) has one galaxy profile and one PSF. A survey
has many of both. This module draws and renders a population in which every stamp has its own
galaxy family and its own PSF, and in which one galaxy family and one PSF family never enter
training (:attr:`PopulationConfig.held_out_galaxy`, :attr:`PopulationConfig.held_out_psf`).

Galaxy families (:data:`GALAXY_FAMILIES`, label ``galaxy_id``):

* ``gauss``: a Gaussian;
* ``exp``: an exponential disk;
* ``sersic``: a Sersic profile with index ``sersic_n`` drawn from :attr:`PopulationConfig.sersic_n`
  (a short list: GalSim tabulates each index once, so a continuum of indices would dominate the
  cost; at most 3: an untruncated n = 4 profile as large as these galaxies needs FFTs of up to
  10^4 pixels a side, 0.3-1.3 s per stamp and 13 stamps per finite-difference bound; the held-out
  bulge+disk family carries the n = 4 bulge);
* ``bulge_disk``: a de Vaucouleurs bulge of half the disk's half-light radius plus an exponential
  disk, the bulge holding ``bulge_fraction`` ~ U(``bulge_fraction_min``, ``bulge_fraction_max``)
  of the flux (one shape for both: the profile is sheared as a whole).

Shapes, sizes, fluxes and centroid offsets follow :class:`~shearbridge.config.SimConfig` (the
field ``sim``), as in :func:`shearbridge.sim.stamps.draw_population`: ``size_arcsec`` is the
Gaussian sigma of a ``gauss`` galaxy and ``size_arcsec * sqrt(2 ln 2)`` the half-light radius of
the others.

PSF families (:data:`PSF_FAMILIES`, label ``psf_id``), each of FWHM ``psf_fwhm_arcsec`` ~
U(``psf_fwhm_min``, ``psf_fwhm_max``) and sheared by a small ellipticity ``(psf_g1, psf_g2)``
drawn uniformly in the disk ``|g| < psf_g_max``:

* ``gauss``: a Gaussian;
* ``moffat``: a Moffat of index ``moffat_beta`` (wings);
* ``kolmogorov``: GalSim's Kolmogorov profile, the long-exposure PSF of atmospheric turbulence
  (held out by default: the network never sees it in training).

Rendering: :func:`render_pair` (:func:`render_stamp` and :func:`render_psf_image`) draws the galaxy
convolved with its PSF and offset by ``(dx, dy)``, and the unit-flux PSF alone, centred, both with
GalSim's pixel response, float64, with the accuracy settings
:data:`shearbridge.sim.stamps.GSPARAMS`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import galsim
import numpy as np

from shearbridge.config import ConfigError
from shearbridge.config.population import GALAXY_FAMILIES, PSF_FAMILIES, PopulationConfig
from shearbridge.sim.stamps import GSPARAMS, HLR_PER_SIGMA

__all__ = [
    "GALAXY_FAMILIES",
    "PSF_FAMILIES",
    "POPULATION_LABELS",
    "PopulationConfig",
    "draw_population",
    "training_families",
    "galaxy_object",
    "psf_object",
    "render_pair",
    "render_population",
    "render_psf_image",
    "render_stamp",
]


#: Labels of a population row (all float64 except the two family ids, int64).
POPULATION_LABELS = (
    "g1",
    "g2",
    "size_arcsec",
    "flux",
    "dx_arcsec",
    "dy_arcsec",
    "galaxy_id",
    "sersic_n",
    "bulge_fraction",
    "psf_id",
    "psf_fwhm_arcsec",
    "psf_g1",
    "psf_g2",
)
_INT_LABELS = ("galaxy_id", "psf_id")


def training_families(cfg: PopulationConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The galaxy and PSF families a network may be trained on: all but the held-out ones."""
    cfg.validate()
    return (
        tuple(f for f in cfg.galaxy_families if f != cfg.held_out_galaxy),
        tuple(f for f in cfg.psf_families if f != cfg.held_out_psf),
    )


def draw_population(
    cfg: PopulationConfig,
    n: int,
    rng: np.random.Generator,
    *,
    galaxies: Sequence[str],
    psfs: Sequence[str],
) -> dict[str, np.ndarray]:
    """Labels of ``n`` stamps whose galaxy and PSF families are drawn uniformly from ``galaxies``
    and ``psfs`` (names of :data:`GALAXY_FAMILIES`, :data:`PSF_FAMILIES` in ``cfg``).

    Returns arrays of shape ``(n,)`` for each of :data:`POPULATION_LABELS`; ``sersic_n`` is 0 for
    a galaxy that is not a Sersic profile and ``bulge_fraction`` 0 for one that is not bulge+disk.
    Training sets pass :func:`training_families`; a cell of the evaluation passes one family each.
    """
    cfg.validate()
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    for name, chosen, allowed in (
        ("galaxies", galaxies, cfg.galaxy_families),
        ("psfs", psfs, cfg.psf_families),
    ):
        if not chosen or any(c not in allowed for c in chosen):
            raise ConfigError(
                f"{name} must be a non-empty subset of {allowed!r}, got {tuple(chosen)!r}"
            )
    n, sim = int(n), cfg.sim
    g = rng.normal(0.0, sim.g_sigma, size=(n, 2))
    while (bad := np.hypot(g[:, 0], g[:, 1]) >= 1.0).any():
        g[bad] = rng.normal(0.0, sim.g_sigma, size=(int(bad.sum()), 2))
    size = np.abs(rng.normal(0.0, sim.size_scale_arcsec, size=n))
    while (bad := size <= sim.size_min_arcsec).any():
        size[bad] = np.abs(rng.normal(0.0, sim.size_scale_arcsec, size=int(bad.sum())))
    flux = rng.uniform(sim.flux_min, sim.flux_max, size=n)
    off = rng.uniform(-sim.offset_max_arcsec, sim.offset_max_arcsec, size=(n, 2))
    galaxy_id = np.array([GALAXY_FAMILIES.index(f) for f in galaxies])[
        rng.integers(0, len(galaxies), n)
    ]
    psf_id = np.array([PSF_FAMILIES.index(f) for f in psfs])[rng.integers(0, len(psfs), n)]
    sersic = np.asarray(cfg.sersic_n, np.float64)[rng.integers(0, len(cfg.sersic_n), n)]
    bulge = rng.uniform(cfg.bulge_fraction_min, cfg.bulge_fraction_max, n)
    fwhm = rng.uniform(cfg.psf_fwhm_min, cfg.psf_fwhm_max, n)
    radius = cfg.psf_g_max * np.sqrt(rng.uniform(0.0, 1.0, n))
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    labels = {
        "g1": g[:, 0].copy(),
        "g2": g[:, 1].copy(),
        "size_arcsec": size,
        "flux": flux,
        "dx_arcsec": off[:, 0].copy(),
        "dy_arcsec": off[:, 1].copy(),
        "galaxy_id": galaxy_id,
        "sersic_n": np.where(galaxy_id == GALAXY_FAMILIES.index("sersic"), sersic, 0.0),
        "bulge_fraction": np.where(galaxy_id == GALAXY_FAMILIES.index("bulge_disk"), bulge, 0.0),
        "psf_id": psf_id,
        "psf_fwhm_arcsec": fwhm,
        "psf_g1": radius * np.cos(angle),
        "psf_g2": radius * np.sin(angle),
    }
    return {
        k: np.asarray(v, np.int64 if k in _INT_LABELS else np.float64) for k, v in labels.items()
    }


def galaxy_object(row: Mapping[str, float]) -> galsim.GSObject:
    """The galaxy of one row before the PSF: the round profile sheared by ``(g1, g2)``."""
    family = GALAXY_FAMILIES[int(row["galaxy_id"])]
    size, flux = float(row["size_arcsec"]), float(row["flux"])
    if not (size > 0 and flux > 0):
        raise ValueError(f"size_arcsec and flux must be positive, got {size}, {flux}")
    hlr = size * HLR_PER_SIGMA
    if family == "gauss":
        gal = galsim.Gaussian(sigma=size, flux=flux, gsparams=GSPARAMS)
    elif family == "exp":
        gal = galsim.Exponential(half_light_radius=hlr, flux=flux, gsparams=GSPARAMS)
    elif family == "sersic":
        gal = galsim.Sersic(
            n=float(row["sersic_n"]), half_light_radius=hlr, flux=flux, gsparams=GSPARAMS
        )
    else:
        fb = float(row["bulge_fraction"])
        gal = galsim.Add(
            [
                galsim.DeVaucouleurs(
                    half_light_radius=0.5 * hlr, flux=fb * flux, gsparams=GSPARAMS
                ),
                galsim.Exponential(
                    half_light_radius=hlr, flux=(1.0 - fb) * flux, gsparams=GSPARAMS
                ),
            ],
            gsparams=GSPARAMS,
        )
    return gal.shear(g1=float(row["g1"]), g2=float(row["g2"]))


@functools.lru_cache(maxsize=4096)
def _psf(family: str, fwhm: float, g1: float, g2: float, beta: float) -> galsim.GSObject:
    if family == "gauss":
        psf = galsim.Gaussian(fwhm=fwhm, gsparams=GSPARAMS)
    elif family == "moffat":
        psf = galsim.Moffat(beta=beta, fwhm=fwhm, gsparams=GSPARAMS)
    else:
        psf = galsim.Kolmogorov(fwhm=fwhm, gsparams=GSPARAMS)
    return psf.shear(g1=g1, g2=g2)


def psf_object(cfg: PopulationConfig, row: Mapping[str, float]) -> galsim.GSObject:
    """The unit-flux PSF of one row."""
    return _psf(
        PSF_FAMILIES[int(row["psf_id"])],
        float(row["psf_fwhm_arcsec"]),
        float(row["psf_g1"]),
        float(row["psf_g2"]),
        float(cfg.moffat_beta),
    )


def render_stamp(cfg: PopulationConfig, row: Mapping[str, float]) -> np.ndarray:
    """The noise-free stamp of one row, ``(S, S)`` float64: the galaxy convolved with its PSF,
    offset by ``(dx_arcsec, dy_arcsec)`` from the stamp centre, with GalSim's pixel response."""
    sim = cfg.sim
    scale, size = sim.pixel_scale_arcsec, sim.stamp_size_px
    obj = galsim.Convolve(galaxy_object(row), psf_object(cfg, row), gsparams=GSPARAMS)
    return obj.drawImage(
        nx=size,
        ny=size,
        scale=scale,
        dtype=np.float64,
        offset=(float(row["dx_arcsec"]) / scale, float(row["dy_arcsec"]) / scale),
    ).array


def render_psf_image(cfg: PopulationConfig, row: Mapping[str, float]) -> np.ndarray:
    """The unit-flux PSF of one row, centred, with GalSim's pixel response, ``(S, S)`` float64."""
    size = cfg.sim.stamp_size_px
    return (
        psf_object(cfg, row)
        .drawImage(nx=size, ny=size, scale=cfg.sim.pixel_scale_arcsec, dtype=np.float64)
        .array
    )


def render_pair(cfg: PopulationConfig, row: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`render_stamp` and :func:`render_psf_image` of one row."""
    return render_stamp(cfg, row), render_psf_image(cfg, row)


def render_population(
    cfg: PopulationConfig,
    labels: Mapping[str, np.ndarray],
    progress: Callable[[int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free stamps and PSF images of every row, two ``(N, S, S)`` float32 arrays
    (float32 is what the networks read; the rendering itself is float64). ``progress(1)`` after
    each row."""
    cfg.validate()
    missing = [k for k in POPULATION_LABELS if k not in labels]
    if missing:
        raise ValueError(f"population labels lack {missing}")
    n, size = len(labels["g1"]), cfg.sim.stamp_size_px
    stamps = np.empty((n, size, size), np.float32)
    psfs = np.empty((n, size, size), np.float32)
    for i in range(n):
        stamps[i], psfs[i] = render_pair(cfg, {k: labels[k][i] for k in POPULATION_LABELS})
        if progress is not None:
            progress(1)
    return stamps, psfs

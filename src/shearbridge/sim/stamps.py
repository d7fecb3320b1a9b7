"""GalSim galaxy stamps: ShearNet's 2025 setup by default, plus robustness variants.

The default :class:`~shearbridge.config.SimConfig` reproduces ShearNet's 2025
simulation (ShearNet, github.com/s-Sayan/ShearNet; the paper's data section): a
``galsim.Gaussian(sigma=s, flux=F)`` sheared by the label ``(g1, g2)`` (reduced shear ``g``,
not distortion ``e``), convolved with a ``galsim.Gaussian(sigma=0.25)`` PSF (sigma in arcsec,
FWHM ~ 0.59"), drawn with the default pixel response on a 53 x 53 grid of 0.141" pixels and
offset from the stamp centre by ``(dx, dy)`` arcsec.

Label distributions (all drawn from an explicit ``numpy.random.Generator``):

* ``g1, g2`` each ~ N(0, ``g_sigma``), the pair redrawn while ``|g| >= 1``;
* ``size_arcsec`` ~ half-normal(scale ``size_scale_arcsec``), redrawn while
  ``size_arcsec <= size_min_arcsec``. It is the Gaussian sigma (arcsec) of the round
  profile before shearing; for ``exp``, ``sersic`` and ``bulge_disk`` the half-light
  radius is ``size_arcsec * sqrt(2 ln 2)`` (that of a Gaussian of the same sigma);
* ``flux`` ~ U(``flux_min``, ``flux_max``) (total counts of the stamp's profile);
* ``dx_arcsec, dy_arcsec`` ~ U(-``offset_max_arcsec``, +``offset_max_arcsec``) each;
  ``dx`` moves the galaxy along the image x axis (array columns), ``dy`` along y (rows).

``galaxy="mix"`` draws the model of each object uniformly from :data:`MIX_MODELS`
(label ``model_id``, an index into :data:`MIX_MODELS`; pure populations carry a
constant ``model_id`` too).

Shear-test mode (``SimConfig.shear_test``): each drawn galaxy (``pair_id``) gives
:data:`SHEAR_TEST_STAMPS` = 16 stamps: four orientations (position angle ``45 * orient``
degrees, ``orient = 0..3``; a rotation by 45 degrees multiplies a spin-2 shape by ``i``) x
applied shear ``+g`` / ``-g`` (``sign = +1, -1``) x noise field ``+n`` / ``-n``
(``noise_sign = +1, -1``), stamp ``16 i + 4 orient + 2 s + f`` (``s = 0`` for ``+g``,
``f = 0`` for ``+n``). ``g`` is the constant ``applied_shear`` along component
``k = pair_id % 2``. The applied shear acts after the intrinsic shape (lensing):
``profile.shear(g_int).shear(g_applied)``, whose ellipticity is exactly
``galsim.Shear(g_applied) + galsim.Shear(g_int)`` (GalSim's ``+`` is
``(a + b) / (1 + conj(a) b)``, the lensing formula with ``a`` the shear). Averaging the
lensed shape over four orientations 45 degrees apart cancels the intrinsic shape to
``O(g^3 e^4)`` (two orientations 90 degrees apart leave the ``-conj(g) e^2`` term of the
lensing formula, a per-galaxy response error of order ``e^2``); the two stamps of one
orientation and one noise sign differ only by the sign of the shear, and the noise
fields of an orientation's ``+n`` and ``-n`` stamps are opposite (antithetic), so the odd
orders of the noise cancel in the average over a galaxy's stamps without biasing it.
The 16 stamps share the size, flux and centroid offset (and, in
:mod:`shearbridge.sim.datasets`, one noise field per orientation, with both signs).

Rendering precision: all profiles use :data:`GSPARAMS`. Against a much stricter
reference (folding 1e-7, maxk 1e-9, k/x-value accuracy 1e-10), the largest absolute
pixel error of a clean stamp, measured over random draws plus extreme (small,
elongated, flux-5) galaxies, is 5e-10 for Gaussian (x) Gaussian, ~7e-9 for the
Moffat PSF, and ~2e-9 / 7e-10 for Sersic / bulge+disk, i.e. >= 100x below 1e-6 and
>= 1000x below the lowest noise sigma (1e-5). GalSim's default GSParams give up to
3e-7 (bulge+disk (x) Moffat). The cost, stamps/s on one idle core (GalSim defaults in
brackets): Gaussian (x) Gaussian ~1,700 (~1,800), Gaussian (x) Moffat ~550 (~700),
exponential (x) Moffat ~270 (~400), Sersic ~100 (~290), bulge+disk ~40 (~170); a busy
shared core is 2-4x slower. ``tests/test_sim.py`` checks the Gaussian case against an
analytic pixel integral (to 1e-8; measured 5e-10) and the others against the strict
reference.
"""

from __future__ import annotations

import functools
import math
from typing import Mapping

import galsim
import numpy as np

from shearbridge.config import ConfigError, SimConfig

__all__ = [
    "GSPARAMS",
    "GSPARAMS_DICT",
    "MIX_MODELS",
    "HLR_PER_SIGMA",
    "BASE_LABELS",
    "SHEAR_LABELS",
    "SHEAR_TEST_STAMPS",
    "SHEAR_TEST_ORIENTATIONS",
    "check_sim",
    "draw_population",
    "expand_shear_test",
    "galaxy_profile",
    "lensed_shear",
    "psf_profile",
    "render_clean",
    "render_psf",
    "render_rows",
]

#: GalSim accuracy settings for every profile (see the module docstring for the
#: measured rendering error and speed).
GSPARAMS_DICT: dict[str, float] = {
    "folding_threshold": 1e-4,
    "maxk_threshold": 1e-6,
    "kvalue_accuracy": 1e-7,
    "xvalue_accuracy": 1e-7,
}
GSPARAMS = galsim.GSParams(**GSPARAMS_DICT)

#: Models of a ``galaxy="mix"`` population; ``model_id`` indexes this tuple.
MIX_MODELS: tuple[str, ...] = ("gauss", "exp", "sersic", "bulge_disk")

#: Half-light radius of a Gaussian in units of its sigma: sqrt(2 ln 2) ~ 1.1774.
HLR_PER_SIGMA = math.sqrt(2.0 * math.log(2.0))

#: Labels of every population (float64 except ``model_id``, int64).
BASE_LABELS = ("g1", "g2", "size_arcsec", "flux", "dx_arcsec", "dy_arcsec", "model_id")
#: Extra labels of a shear-test population.
SHEAR_LABELS = (
    "g1_int",
    "g2_int",
    "applied_g1",
    "applied_g2",
    "pair_id",
    "orient",
    "sign",
    "noise_sign",
)
#: Orientations of a shear-test galaxy (position angles 45 degrees apart).
SHEAR_TEST_ORIENTATIONS = 4
#: Stamps per shear-test galaxy: orientations x (+g, -g) x (+n, -n).
SHEAR_TEST_STAMPS = 4 * SHEAR_TEST_ORIENTATIONS

_INT_LABELS = ("model_id", "pair_id", "orient", "sign", "noise_sign")


def check_sim(sim: SimConfig) -> None:
    """Validate ``sim`` (``SimConfig.validate`` plus checks only the simulator needs).

    Raises
    ------
    ConfigError
        Naming the offending field.
    """
    if not isinstance(sim, SimConfig):
        raise ConfigError(f"sim must be a SimConfig, got {type(sim).__name__}")
    sim.validate()
    if not sim.size_min_arcsec >= 0:
        raise ConfigError(f"size_min_arcsec must be >= 0, got {sim.size_min_arcsec}")


def draw_population(sim: SimConfig, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw the labels of ``n`` galaxies.

    Parameters
    ----------
    sim
        The population.
    n
        Number of galaxies (>= 1).
    rng
        The only source of randomness.

    Returns
    -------
    dict
        :data:`BASE_LABELS` arrays of shape ``(n,)``; in shear-test mode, shape
        ``(16 n,)`` plus :data:`SHEAR_LABELS`, stamp ``16 i + j`` being variant ``j`` of
        galaxy ``i`` (order in the module docstring), and ``g1, g2`` the lensed shape.
    """
    check_sim(sim)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    n = int(n)
    g = rng.normal(0.0, sim.g_sigma, size=(n, 2))
    bad = np.hypot(g[:, 0], g[:, 1]) >= 1.0
    while bad.any():
        g[bad] = rng.normal(0.0, sim.g_sigma, size=(int(bad.sum()), 2))
        bad = np.hypot(g[:, 0], g[:, 1]) >= 1.0
    size = np.abs(rng.normal(0.0, sim.size_scale_arcsec, size=n))
    bad = size <= sim.size_min_arcsec
    while bad.any():
        size[bad] = np.abs(rng.normal(0.0, sim.size_scale_arcsec, size=int(bad.sum())))
        bad = size <= sim.size_min_arcsec
    flux = rng.uniform(sim.flux_min, sim.flux_max, size=n)
    off = rng.uniform(-sim.offset_max_arcsec, sim.offset_max_arcsec, size=(n, 2))
    if sim.galaxy == "mix":
        model_id = rng.integers(0, len(MIX_MODELS), size=n)
    else:
        model_id = np.full(n, MIX_MODELS.index(sim.galaxy))
    labels = {
        "g1": g[:, 0].copy(),
        "g2": g[:, 1].copy(),
        "size_arcsec": size,
        "flux": flux,
        "dx_arcsec": off[:, 0].copy(),
        "dy_arcsec": off[:, 1].copy(),
        "model_id": model_id.astype(np.int64),
    }
    if sim.shear_test:
        labels = expand_shear_test(sim, labels)
    return {
        k: np.asarray(v, np.int64 if k in _INT_LABELS else np.float64) for k, v in labels.items()
    }


def expand_shear_test(sim: SimConfig, base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sixteen stamps per galaxy: orientation x (+g, -g) x (+n, -n) (module docstring), shear
    ``sim.applied_shear``. Every label of ``base`` (``g1, g2``: the intrinsic shape) is repeated;
    ``g1, g2`` become the lensed shape, and :data:`SHEAR_LABELS` are added."""
    n, per = base["g1"].shape[0], SHEAR_TEST_STAMPS
    slot = np.tile(np.arange(per), n)
    pair_id = np.repeat(np.arange(n), per)
    orient = slot // 4
    sign = np.where((slot // 2) % 2 == 0, 1, -1)
    noise_sign = np.where(slot % 2 == 0, 1, -1)
    e_int = (np.repeat(base["g1"], per) + 1j * np.repeat(base["g2"], per)) * np.array(
        [1, 1j, -1, -1j]
    )[orient]
    g1_int, g2_int = e_int.real.copy(), e_int.imag.copy()
    along_1 = pair_id % 2 == 0
    applied_g1 = np.where(along_1, sign * sim.applied_shear, 0.0)
    applied_g2 = np.where(along_1, 0.0, sign * sim.applied_shear)
    g1 = np.empty(per * n)
    g2 = np.empty(per * n)
    for i in range(per * n):
        if noise_sign[i] < 0:  # the same image as the stamp before it
            g1[i], g2[i] = g1[i - 1], g2[i - 1]
        else:
            g1[i], g2[i] = lensed_shear(g1_int[i], g2_int[i], applied_g1[i], applied_g2[i])
    out = {k: np.repeat(v, per) for k, v in base.items()}
    out.update(
        g1=g1,
        g2=g2,
        g1_int=g1_int,
        g2_int=g2_int,
        applied_g1=applied_g1,
        applied_g2=applied_g2,
        pair_id=pair_id,
        orient=orient,
        sign=sign,
        noise_sign=noise_sign,
    )
    return out


def lensed_shear(g1_int: float, g2_int: float, g1_app: float, g2_app: float) -> tuple[float, float]:
    """Ellipticity (reduced shear) of ``round_profile.shear(g_int).shear(g_applied)``.

    ``Shear(g_applied) + Shear(g_int)``. Two shears compose to a shear times a rotation;
    the rotation acts first, on a circularly symmetric profile (all models here), so the
    stamp is exactly ``round_profile.shear(lensed)`` (checked to 1e-12 in the tests).
    """
    s = galsim.Shear(g1=g1_app, g2=g2_app) + galsim.Shear(g1=g1_int, g2=g2_int)
    return float(s.g1), float(s.g2)


def _round_profile(model: str, sim: SimConfig, size_arcsec: float, flux: float) -> galsim.GSObject:
    """The unsheared galaxy of one model; ``size_arcsec`` is the equivalent Gaussian sigma."""
    if model == "gauss":
        return galsim.Gaussian(sigma=size_arcsec, flux=flux, gsparams=GSPARAMS)
    hlr = size_arcsec * HLR_PER_SIGMA
    if model == "exp":
        return galsim.Exponential(half_light_radius=hlr, flux=flux, gsparams=GSPARAMS)
    if model == "sersic":
        return galsim.Sersic(n=sim.sersic_n, half_light_radius=hlr, flux=flux, gsparams=GSPARAMS)
    if model == "bulge_disk":
        bulge = galsim.DeVaucouleurs(
            half_light_radius=0.5 * hlr, flux=sim.bulge_fraction * flux, gsparams=GSPARAMS
        )
        disk = galsim.Exponential(
            half_light_radius=hlr, flux=(1.0 - sim.bulge_fraction) * flux, gsparams=GSPARAMS
        )
        return galsim.Add([bulge, disk], gsparams=GSPARAMS)
    raise ConfigError(f"galaxy model must be one of {MIX_MODELS}, got {model!r}")


def galaxy_profile(
    sim: SimConfig,
    g1: float,
    g2: float,
    size_arcsec: float,
    flux: float,
    *,
    model: str | None = None,
) -> galsim.GSObject:
    """The galaxy before PSF convolution: the round profile sheared by ``(g1, g2)``.

    Parameters
    ----------
    sim
        Supplies the model (``sim.galaxy``) and its shape parameters.
    g1, g2
        Reduced shear applied with ``GSObject.shear(g1=, g2=)``; ``+g1`` stretches along x.
    size_arcsec
        Gaussian sigma in arcsec (half-light radius ``size_arcsec * sqrt(2 ln 2)``
        for the non-Gaussian models), before shearing (shearing preserves area).
    flux
        Total flux.
    model
        One of :data:`MIX_MODELS`; required when ``sim.galaxy == "mix"``, otherwise
        defaults to ``sim.galaxy``.
    """
    model = model if model is not None else sim.galaxy
    if model == "mix":
        raise ValueError("galaxy='mix' needs an explicit model= (one of MIX_MODELS)")
    if not size_arcsec > 0 or not flux > 0:
        raise ValueError(f"size_arcsec and flux must be positive, got {size_arcsec}, {flux}")
    return _round_profile(model, sim, size_arcsec, flux).shear(g1=g1, g2=g2)


@functools.lru_cache(maxsize=16)
def psf_profile(sim: SimConfig) -> galsim.GSObject:
    """The unit-flux PSF: Gaussian of sigma ``psf_sigma_arcsec`` or Moffat(``moffat_beta``,
    FWHM ``psf_fwhm_arcsec``), sheared by ``(psf_g1, psf_g2)`` where non-zero. Cached per config
    (GSObjects are immutable)."""
    check_sim(sim)
    if sim.psf == "gauss":
        psf = galsim.Gaussian(sigma=sim.psf_sigma_arcsec, gsparams=GSPARAMS)
    else:
        psf = galsim.Moffat(beta=sim.moffat_beta, fwhm=sim.psf_fwhm_arcsec, gsparams=GSPARAMS)
    return psf.shear(g1=sim.psf_g1, g2=sim.psf_g2) if (sim.psf_g1 or sim.psf_g2) else psf


def _row_model(sim: SimConfig, row: Mapping[str, float]) -> str:
    if sim.galaxy != "mix":
        return sim.galaxy
    return MIX_MODELS[int(row["model_id"])]


def render_clean(sim: SimConfig, row: Mapping[str, float]) -> np.ndarray:
    """Noise-free stamp of one population row (float64, shape ``(S, S)``).

    The galaxy is convolved with :func:`psf_profile`, offset by
    ``(dx_arcsec, dy_arcsec) / pixel_scale`` pixels from the stamp's true centre and
    drawn with GalSim's default pixel response. In shear-test mode the galaxy is
    ``round.shear(g1_int, g2_int).shear(applied_g1, applied_g2)``.
    """
    model = _row_model(sim, row)
    size, flux = float(row["size_arcsec"]), float(row["flux"])
    if sim.shear_test:
        g1, g2 = float(row["g1_int"]), float(row["g2_int"])
        gal = galaxy_profile(sim, g1, g2, size, flux, model=model)
        gal = gal.shear(g1=float(row["applied_g1"]), g2=float(row["applied_g2"]))
    else:
        gal = galaxy_profile(sim, float(row["g1"]), float(row["g2"]), size, flux, model=model)
    scale = sim.pixel_scale_arcsec
    obj = galsim.Convolve(gal, psf_profile(sim), gsparams=GSPARAMS)
    image = obj.drawImage(
        nx=sim.stamp_size_px,
        ny=sim.stamp_size_px,
        scale=scale,
        offset=(float(row["dx_arcsec"]) / scale, float(row["dy_arcsec"]) / scale),
        dtype=np.float64,
    )
    return image.array


def render_psf(sim: SimConfig) -> np.ndarray:
    """The unit-flux PSF, centred, with the pixel response (float64, ``(S, S)``)."""
    image = psf_profile(sim).drawImage(
        nx=sim.stamp_size_px, ny=sim.stamp_size_px, scale=sim.pixel_scale_arcsec, dtype=np.float64
    )
    return image.array


def render_rows(
    sim: SimConfig, labels: Mapping[str, np.ndarray], rows: range | np.ndarray
) -> np.ndarray:
    """Noise-free stamps of the given rows of a population (float64, ``(len(rows), S, S)``)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((rows.size, sim.stamp_size_px, sim.stamp_size_px))
    for j, i in enumerate(rows):
        out[j] = render_clean(sim, {k: v[i] for k, v in labels.items()})
    return out

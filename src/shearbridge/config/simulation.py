"""What a galaxy stamp looks like: :class:`SimConfig` (GalSim settings) and the models it may name.

Units are in the field names: ``*_arcsec`` is arcseconds, ``*_px`` pixels.
Shears are reduced shears ``g`` (not distortions ``e``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shearbridge.config.checks import check_choice, check_positive
from shearbridge.errors import ConfigError

__all__ = ["SimConfig", "GALAXY_MODELS", "PSF_MODELS", "FWHM_PER_SIGMA"]


# "mix": each object drawn uniformly from the other four (see shearbridge.sim.stamps.MIX_MODELS).
GALAXY_MODELS = ("gauss", "exp", "sersic", "bulge_disk", "mix")
PSF_MODELS = ("gauss", "moffat")
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # a Gaussian's FWHM over its sigma


@dataclass(frozen=True)
class SimConfig:
    """One population of simulated galaxy stamps (ShearNet's 2025 setup by default).

    The galaxy size label ``size_arcsec`` is the Gaussian sigma for ``gauss``;
    for the other profiles the half-light radius is ``size_arcsec * sqrt(2 ln 2)``
    (the half-light radius of a Gaussian with that sigma), so the same label
    distribution gives galaxies of comparable extent. ``psf_g1, psf_g2``: the PSF sheared by
    this reduced shear (an anisotropic PSF; 0 = round). ``psf_sigma_px`` stays the round size.
    """

    galaxy: str = "gauss"
    psf: str = "gauss"
    psf_sigma_arcsec: float = 0.25
    psf_fwhm_arcsec: float = 0.7
    moffat_beta: float = 2.5
    pixel_scale_arcsec: float = 0.141
    stamp_size_px: int = 53
    g_sigma: float = 0.26
    size_scale_arcsec: float = 0.5
    size_min_arcsec: float = 0.14
    flux_min: float = 1.0
    flux_max: float = 5.0
    offset_max_arcsec: float = 0.2
    sersic_n: float = 2.5
    bulge_fraction: float = 0.3
    shear_test: bool = False
    applied_shear: float = 0.02
    psf_g1: float = 0.0
    psf_g2: float = 0.0

    @property
    def psf_sigma_px(self) -> float:
        """The PSF's Gaussian sigma in pixels: ``psf_sigma_arcsec`` for a Gaussian PSF, the
        FWHM-matched Gaussian's (``psf_fwhm_arcsec / 2.3548``) for a Moffat PSF."""
        if self.psf == "moffat":
            return self.psf_fwhm_arcsec / FWHM_PER_SIGMA / self.pixel_scale_arcsec
        return self.psf_sigma_arcsec / self.pixel_scale_arcsec

    def validate(self) -> None:
        check_choice("galaxy", self.galaxy, GALAXY_MODELS)
        check_choice("psf", self.psf, PSF_MODELS)
        for name in (
            "psf_sigma_arcsec",
            "psf_fwhm_arcsec",
            "pixel_scale_arcsec",
            "g_sigma",
            "size_scale_arcsec",
            "flux_min",
        ):
            check_positive(name, getattr(self, name))
        if self.stamp_size_px < 8:
            raise ConfigError(f"stamp_size_px must be >= 8, got {self.stamp_size_px}")
        if self.flux_max <= self.flux_min:
            raise ConfigError(f"flux_max ({self.flux_max}) must exceed flux_min ({self.flux_min})")
        if self.offset_max_arcsec < 0:
            raise ConfigError(f"offset_max_arcsec must be >= 0, got {self.offset_max_arcsec}")
        if self.moffat_beta <= 1:
            raise ConfigError(f"moffat_beta must be > 1, got {self.moffat_beta}")
        if not 0.3 <= self.sersic_n <= 6.2:
            raise ConfigError(f"sersic_n must lie in [0.3, 6.2] (GalSim), got {self.sersic_n}")
        if not 0.0 <= self.bulge_fraction <= 1.0:
            raise ConfigError(f"bulge_fraction must lie in [0, 1], got {self.bulge_fraction}")
        if not (
            math.isfinite(self.psf_g1)
            and math.isfinite(self.psf_g2)
            and math.hypot(self.psf_g1, self.psf_g2) < 0.5
        ):
            raise ConfigError(
                "psf_g1, psf_g2 must be finite with |g_psf| < 0.5, "
                f"got {self.psf_g1}, {self.psf_g2}"
            )
        if not 0.0 < abs(self.applied_shear) < 0.2:
            raise ConfigError(f"applied_shear must satisfy 0 < |g| < 0.2, got {self.applied_shear}")

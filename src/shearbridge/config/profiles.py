"""How much of everything the pipeline does: :class:`Profile` and the named profiles.

``quick`` for tests and CI, ``paper`` for the numbers the manuscript reports, ``full`` for a
converged GPU-scale run; only sizes differ between them. The active profile is chosen once, by the
environment variable ``SHEARBRIDGE_PROFILE`` (the Makefile sets it from ``PROFILE=...``), and read
by :func:`active_profile`. An unknown name raises :class:`ConfigError` naming where it came from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from shearbridge.config.noise import SURVEY_NOISE_GRID
from shearbridge.errors import ConfigError

__all__ = ["Profile", "PROFILES", "PROFILE_ENV", "DEFAULT_PROFILE", "get_profile", "active_profile"]


PROFILE_ENV = "SHEARBRIDGE_PROFILE"
DEFAULT_PROFILE = "paper"


@dataclass(frozen=True)
class Profile:
    """How much work the pipeline does. Only sizes differ between profiles."""

    name: str
    noise_grid: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)
    n_train: int = 4096  # training + validation objects (validation is a shuffled split)
    val_fraction: float = 0.2
    n_test: int = 1024
    n_crlb: int = 512  # test objects with a per-galaxy Cramer-Rao bound
    n_shear_pairs: int = 1024  # galaxies in the shear-test set (x16 stamps)
    epochs: int = 5
    patience: int = 20
    seed: int = 20251123
    bootstrap: int = 200  # bootstrap resamples for error bars
    description: str = ""

    def validate(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ConfigError(f"profile name must be alphanumeric, got {self.name!r}")
        if len(self.noise_grid) == 0 or any(s <= 0 for s in self.noise_grid):
            raise ConfigError(f"noise_grid must hold positive sigmas, got {self.noise_grid}")
        for name in ("n_train", "n_test", "n_crlb", "n_shear_pairs", "epochs", "bootstrap"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if self.n_crlb > self.n_test:
            raise ConfigError(f"n_crlb ({self.n_crlb}) cannot exceed n_test ({self.n_test})")


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        noise_grid=SURVEY_NOISE_GRID,
        n_train=2560,
        n_test=512,
        n_crlb=128,
        n_shear_pairs=256,
        epochs=6,
        patience=5,
        bootstrap=50,
        description="whole pipeline in minutes: tests and CI; numbers are not science-grade",
    ),
    "paper": Profile(
        name="paper",
        noise_grid=SURVEY_NOISE_GRID,
        n_train=32768,
        n_test=4096,
        n_crlb=1024,
        n_shear_pairs=2048,
        epochs=10,
        patience=20,
        bootstrap=200,
        description="the numbers the paper reports; about an hour on 2 CPU cores",
    ),
    "full": Profile(
        name="full",
        noise_grid=SURVEY_NOISE_GRID,
        n_train=125000,
        n_test=5000,
        n_crlb=2000,
        n_shear_pairs=20000,
        epochs=300,
        patience=20,
        bootstrap=500,
        description=(
            "converged, ShearNet-sized training (1e5 galaxies, <=300 epochs): meant for a GPU"
        ),
    ),
}


def get_profile(name: str, source: str | None = None) -> Profile:
    """The named profile, or a ConfigError listing the known ones that names ``source``, where the
    name came from (``"--profile"``: ``unknown profile 'quik' (set by --profile); known: ...``)."""
    if name not in PROFILES:
        where = f" (set by {source})" if source else ""
        raise ConfigError(f"unknown profile {name!r}{where}; known: {sorted(PROFILES)}")
    profile = PROFILES[name]
    profile.validate()
    return profile


def active_profile() -> Profile:
    """The profile named by ``$SHEARBRIDGE_PROFILE`` (default ``paper``)."""
    name = os.environ.get(PROFILE_ENV, DEFAULT_PROFILE) or DEFAULT_PROFILE
    return get_profile(name, source=f"${PROFILE_ENV}")

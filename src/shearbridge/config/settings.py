"""Configuration as code: frozen dataclasses, profiles and validation.

Everything that changes a number in the paper lives here, in one place:

* :class:`SimConfig` — what a galaxy stamp looks like (GalSim settings);
* :class:`Profile` — how much of everything the pipeline does (``quick`` for
  tests and CI, ``paper`` for the numbers the manuscript reports, ``full`` for a
  converged GPU-scale run);
* :class:`TrainConfig` — how a network is trained.

The active profile is chosen once, by the environment variable
``SHEARBRIDGE_PROFILE`` (the Makefile sets it from ``PROFILE=...``), and read by
:func:`active_profile`. Unknown names, unknown fields and out-of-range values
raise :class:`ConfigError` naming the offending field.

Units are in the field names: ``*_arcsec`` is arcseconds, ``*_px`` pixels.
Shears are reduced shears ``g`` (not distortions ``e``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

__all__ = [
    "ConfigError",
    "SimConfig",
    "Profile",
    "TrainConfig",
    "PROFILES",
    "PROFILE_ENV",
    "active_profile",
    "get_profile",
    "from_dict",
    "to_dict",
    "config_hash",
    "noise_tag",
    "LSST_M_REQUIREMENT",
    "LSST_C_REQUIREMENT",
    "EUCLID_M_REQUIREMENT",
    "EUCLID_C_REQUIREMENT",
    "SIGMA_M_TARGET_HIGH_SNR",
    "SIGMA_M_TARGET_SURVEY",
    "SIGMA_M_HIGH_SNR",
    "GALAXY_MODELS",
    "PSF_MODELS",
    "DEFAULT_PROFILE",
]

PROFILE_ENV = "SHEARBRIDGE_PROFILE"

# Shear-bias requirements on isolated galaxies (LSST DESC Science Requirements Document,
# Mandelbaum et al. 2018, arXiv:1809.01669; the paper's introduction).
LSST_M_REQUIREMENT = 1e-3
LSST_C_REQUIREMENT = 1e-4
# Euclid's (Cropper et al. 2013, MNRAS 431, 3103): sigma(m) < 2e-3, c known to 5e-4.
EUCLID_M_REQUIREMENT = 2e-3
EUCLID_C_REQUIREMENT = 5e-4
# The shear test's precision targets: sigma(m) at median matched-filter S/N >= 200 and below it.
SIGMA_M_TARGET_HIGH_SNR = 1e-4
SIGMA_M_TARGET_SURVEY = 1e-3
SIGMA_M_HIGH_SNR = 200.0
DEFAULT_PROFILE = "paper"


from shearbridge.errors import ConfigError  # noqa: E402  (re-exported: the usual import)

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
        _check_choice("galaxy", self.galaxy, GALAXY_MODELS)
        _check_choice("psf", self.psf, PSF_MODELS)
        for name in (
            "psf_sigma_arcsec",
            "psf_fwhm_arcsec",
            "pixel_scale_arcsec",
            "g_sigma",
            "size_scale_arcsec",
            "flux_min",
        ):
            _check_positive(name, getattr(self, name))
        if self.stamp_size_px < 8:
            raise ConfigError(f"stamp_size_px must be >= 8, got {self.stamp_size_px}")
        if self.flux_max <= self.flux_min:
            raise ConfigError(
                f"flux_max ({self.flux_max}) must exceed flux_min ({self.flux_min})"
            )
        if self.offset_max_arcsec < 0:
            raise ConfigError(f"offset_max_arcsec must be >= 0, got {self.offset_max_arcsec}")
        if self.moffat_beta <= 1:
            raise ConfigError(f"moffat_beta must be > 1, got {self.moffat_beta}")
        if not 0.3 <= self.sersic_n <= 6.2:
            raise ConfigError(f"sersic_n must lie in [0.3, 6.2] (GalSim), got {self.sersic_n}")
        if not 0.0 <= self.bulge_fraction <= 1.0:
            raise ConfigError(f"bulge_fraction must lie in [0, 1], got {self.bulge_fraction}")
        if not (math.isfinite(self.psf_g1) and math.isfinite(self.psf_g2)
                and math.hypot(self.psf_g1, self.psf_g2) < 0.5):
            raise ConfigError(f"psf_g1, psf_g2 must be finite with |g_psf| < 0.5, got {self.psf_g1}, {self.psf_g2}")
        if not 0.0 < abs(self.applied_shear) < 0.2:
            raise ConfigError(f"applied_shear must satisfy 0 < |g| < 0.2, got {self.applied_shear}")


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


@dataclass(frozen=True)
class TrainConfig:
    """How a network is trained (ShearNet's hyper-parameters by default).

    ``epochs`` and ``patience`` of ``None`` mean "take them from the profile"; ``epochs=0`` means
    no gradient step at all: the parameters are the model's ``data_init`` (a least-squares fit on
    the training split), which the model must then have.
    ``max_objects``: train (and validate) on the first this many objects of the
    training set only (``None``: all of them).
    """

    model: str = "enhanced"
    n_outputs: int = 4
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    epochs: int | None = None
    patience: int | None = None
    warmup_epochs: float = 0.0
    standardize_labels: bool = True
    seed: int = 0
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    max_objects: int | None = None

    def validate(self) -> None:
        if self.n_outputs not in (2, 4):
            raise ConfigError(f"n_outputs must be 2 (g1, g2) or 4 (g1, g2, size, flux), got {self.n_outputs}")
        _check_positive("learning_rate", self.learning_rate)
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        for name in ("epochs", "patience", "max_objects"):  # None defaults: from_dict cannot type-check them
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{name} must be an integer or null, got {value!r}")
        if not isinstance(self.model_kwargs, Mapping):
            raise ConfigError(f"model_kwargs must be a mapping, got {self.model_kwargs!r}")
        if self.epochs is not None and self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0 (0: data_init only), got {self.epochs}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1, got {self.patience}")
        if self.max_objects is not None and self.max_objects < 2:
            raise ConfigError(f"max_objects must be >= 2 (a training and a validation object), got {self.max_objects}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")


def _check_positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a finite positive number, got {value!r}")


#: ShearNet's noise grid (pixel sigma 1e-5 ... 1e-2: median matched-filter S/N 2e4 ... 21) and one
#: survey level, 2e-2 (median matched-filter S/N ~10, where surveys measure most of their galaxies).
SURVEY_NOISE_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 2e-2)

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
        description="converged, ShearNet-sized training (1e5 galaxies, <=300 epochs): meant for a GPU",
    ),
}


def get_profile(name: str) -> Profile:
    """The named profile, or a ConfigError listing the known ones."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown profile {name!r} (set by {PROFILE_ENV}); known: {sorted(PROFILES)}"
        ) from None
    profile.validate()
    return profile


def active_profile() -> Profile:
    """The profile named by ``$SHEARBRIDGE_PROFILE`` (default ``paper``)."""
    return get_profile(os.environ.get(PROFILE_ENV, DEFAULT_PROFILE) or DEFAULT_PROFILE)


T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build a config dataclass from a mapping, rejecting unknown or ill-typed fields.

    Nested dataclass fields are built recursively; lists become tuples. The
    resulting object's ``validate()`` is called. Errors are ConfigError naming the
    field as ``section.field``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    prefix = f"{where}." if where else ""
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown field {prefix}{unknown[0]} (known: {sorted(fields)})")
    defaults = cls() if _has_all_defaults(cls) else None  # type: ignore[call-arg]
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        ref = getattr(defaults, name, None) if defaults is not None else None
        kwargs[name] = _coerce(f"{prefix}{name}", value, ref)
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigError as exc:
            raise ConfigError(f"{prefix}{exc}") from None
    return obj


def _has_all_defaults(cls: type) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls)
    )


def _coerce(name: str, value: Any, ref: Any) -> Any:
    """Check ``value`` against the type of the default ``ref`` (when known)."""
    if ref is None:
        return tuple(value) if isinstance(value, list) else value
    if isinstance(ref, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(ref, (int, float)) and not isinstance(ref, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if isinstance(ref, int) and not isinstance(ref, bool) and isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{name} must be an integer, got {value!r}")
            return int(value)
        return type(ref)(value) if isinstance(ref, float) else value
    if isinstance(ref, str):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    if isinstance(ref, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        return tuple(value)
    if dataclasses.is_dataclass(ref):
        return from_dict(type(ref), value, where=name)
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(obj), default=list))


def config_hash(*objs: Any) -> str:
    """A short stable hash of one or more config objects (or plain JSON values)."""
    payload = [to_dict(o) if dataclasses.is_dataclass(o) else o for o in objs]
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def noise_tag(sigma: float) -> str:
    """A file-name-safe, exact label of a noise level: ``1e-05`` for 1e-5, ``1.4e-05`` for 1.4e-5.

    The shortest scientific form that reads back as the same float, so two noise levels
    never share a folder or a result file.
    """
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"a noise level must be a finite positive number, got {sigma!r}")
    for digits in range(17):
        tag = f"{sigma:.{digits}e}"
        if float(tag) == sigma:
            return tag
    return f"{sigma:.16e}"

"""Configuration as code: everything that changes a number in the paper, in one place.

* :mod:`.simulation` — :class:`SimConfig`: what a galaxy stamp looks like (GalSim settings);
* :mod:`.profiles` — :class:`Profile`: how much of everything the pipeline does (``quick`` for
  tests and CI, ``paper`` for the numbers the manuscript reports, ``full`` for a converged
  GPU-scale run), chosen by ``$SHEARBRIDGE_PROFILE`` (:func:`active_profile`);
* :mod:`.training` — :class:`TrainConfig`: how a network is trained;
* :mod:`.requirements` — the shear-bias requirements and the shear test's precision targets;
* :mod:`.serialise` — configs from and to mappings (validated, errors naming the field), their
  hash, exact noise tags; :mod:`.checks` — the validation helpers;
* named experiments: :mod:`.experiments` (imported on its own).

Their names are re-exported here, so ``from shearbridge.config import SimConfig, active_profile``
is the usual import.
"""

from shearbridge.config.profiles import (
    DEFAULT_PROFILE,
    PROFILE_ENV,
    PROFILES,
    Profile,
    active_profile,
    get_profile,
)
from shearbridge.config.requirements import (
    EUCLID_C_REQUIREMENT,
    EUCLID_M_REQUIREMENT,
    LSST_C_REQUIREMENT,
    LSST_M_REQUIREMENT,
    SIGMA_M_HIGH_SNR,
    SIGMA_M_TARGET_HIGH_SNR,
    SIGMA_M_TARGET_SURVEY,
)
from shearbridge.config.serialise import config_hash, from_dict, noise_tag, to_dict
from shearbridge.config.simulation import GALAXY_MODELS, PSF_MODELS, SimConfig
from shearbridge.config.training import TrainConfig
from shearbridge.errors import ConfigError  # the usual import of it

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

"""The package's errors: one root, each subclass also the matching builtin (as GalSim does).

``except ShearbridgeError`` catches every misuse the package reports itself (a malformed
config, bad input stamps, a missing or stale file, an absent optional package); each
subclass is also a ``ValueError``, ``FileNotFoundError`` or ``ImportError``, so code that
catches the builtin keeps working. The command line turns exactly these into a one-line
``error: ...`` and exit status 2; anything else is a bug and raises with its traceback.
"""

from __future__ import annotations

__all__ = [
    "ShearbridgeError",
    "ShearbridgeValueError",
    "ConfigError",
    "InputError",
    "EstimatorInputError",
    "LayerConfigError",
    "ReferenceShapeError",
    "FastConvError",
    "ParallelError",
    "RobustnessError",
    "TrainingDivergedError",
    "MissingFileError",
    "OptionalDependencyError",
    "NgmixUnavailable",
]


class ShearbridgeError(Exception):
    """Root of every error the package raises on purpose."""


class ShearbridgeValueError(ShearbridgeError, ValueError):
    """A value given to the package is wrong; the message names it."""


class ConfigError(ShearbridgeValueError):
    """A configuration (profile, experiment, method, study) is malformed.

    The message names the field.
    """


class InputError(ShearbridgeValueError):
    """Input data (stamps, PSF images, labels) are malformed; the message names the problem."""


class EstimatorInputError(InputError):
    """The inputs of an estimator are malformed (NaN pixels, wrong shapes, bad PSF or noise)."""


class LayerConfigError(ConfigError):
    """A network layer is configured with impossible settings."""


class ReferenceShapeError(InputError):
    """An array given to a NumPy reference implementation has the wrong shape."""


class FastConvError(ConfigError):
    """A fast-convolution kernel is asked for settings it does not support."""


class ParallelError(ConfigError):
    """Data-parallel training cannot use the requested devices or cores."""


class RobustnessError(ConfigError):
    """Unknown method or dataset of the robustness study (the message lists the known ones)."""


class TrainingDivergedError(ShearbridgeError, RuntimeError):
    """A training's loss became non-finite or exploded; no model is published."""


class MissingFileError(ShearbridgeError, FileNotFoundError):
    """A file the step needs does not exist; the message names it and the command that makes it."""


class OptionalDependencyError(ShearbridgeError, ImportError):
    """An optional package (e.g. ngmix) is not installed; the message says how to get it."""


class NgmixUnavailable(OptionalDependencyError):
    """ngmix is not installed (conda-forge only)."""

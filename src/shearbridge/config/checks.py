"""Validation helpers of the config dataclasses: each failure is a ConfigError naming the field."""

from __future__ import annotations

import math
from typing import Any

from shearbridge.errors import ConfigError

__all__ = ["check_choice", "check_positive"]


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")


def check_positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a finite positive number, got {value!r}")

"""Config dataclasses from and to JSON-like mappings, their stable hash, and exact noise labels.

Unknown fields and ill-typed or out-of-range values raise :class:`ConfigError` naming the
offending field as ``section.field``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Mapping, TypeVar

from shearbridge.errors import ConfigError

__all__ = ["from_dict", "to_dict", "config_hash", "noise_tag"]


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

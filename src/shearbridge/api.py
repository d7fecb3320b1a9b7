"""The user-facing API: any registered method on your own stamps, and its catalogue.

``shearbridge.estimator(method, noise_sigma)`` (re-exported by the package) returns an object
with ``.measure(stamps, psf_image, pixel_scale_arcsec, noise_sigma)``; :func:`load_stamps` reads
a user's ``.npy`` with one clear error, :func:`write_catalogue` writes one row per stamp
(``.csv`` or ``.npz``, atomically) and :func:`read_catalogue` reads it back. The command line's
``measure`` is these three calls.

A catalogue names its columns for what they hold. A method that measures a shear per stamp gives
``g1, g2``; a method that measures an ellipticity with a per-stamp shear response (AnaCal: the
FPFS ``e`` and ``de/dg``) gives ``e1, e2`` and ``R1, R2`` (a full 2 x 2 response: ``R11, R12,
R21, R22``). Per-stamp ``e`` is not a shear: the shear of an ensemble is
``g_i = sum(e_i) / sum(R_i)`` over its unflagged rows (:func:`ensemble_shear` reads either kind).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import study
from shearbridge.config import ConfigError, Profile, active_profile
from shearbridge.errors import InputError, MissingFileError
from shearbridge.io import save_npz, write_text
from shearbridge.runs import method_estimator

__all__ = [
    "estimator",
    "load_stamps",
    "write_catalogue",
    "read_catalogue",
    "ensemble_shear",
    "catalogue_kind",
    "CATALOGUE_COLUMNS",
]

#: Help of ``measure`` and of the catalogue: what its columns hold and how to get a shear from them.
CATALOGUE_COLUMNS = """\
The catalogue has one row per stamp, its columns named for what they hold:
  index, g1, g2, flags      a method that measures a shear per stamp
  index, e1, e2, R1, R2, flags
                            a method that measures an ellipticity e with a per-stamp shear
                            response R (AnaCal's FPFS e and de/dg): e is not a shear. The
                            shear of an ensemble of stamps is
                                g_i = sum(e_i) / sum(R_i)   (i = 1, 2; unflagged rows),
                            never a mean of per-stamp e / R
and the method's other per-stamp numbers (size, flux, s2n, ...). flags: 0 is a good
measurement, otherwise an OR of the flag bits that 'shearbridge list' ends with.
In Python: shearbridge.api.ensemble_shear(read_catalogue(path)) -> (g1, g2), either kind."""


def estimator(method: str, noise_sigma: float, *, profile: Profile | None = None) -> Any:
    """The estimator of a registered method (:mod:`shearbridge.study`) for stamps of pixel
    noise ``noise_sigma``: ``.measure(stamps, psf_image, pixel_scale_arcsec, noise_sigma)``.

    A network uses the weights the profile (default: the active one) trained at that noise
    level, and refuses stamps, PSFs or pixel scales other than those it was trained on; when
    the weights are missing the error names the command that makes them.
    """
    profile = profile or active_profile()
    m = study.get_method(method)
    if m.build is None:
        raise ConfigError(
            f"method {method!r} ({m.kind}) does not measure stamps; measuring methods: "
            f"{[x.name for x in study.methods(available_only=False) if x.build is not None]}"
        )
    if not m.available():
        raise ConfigError(f"method {method!r} is not installed here ({m.description})")
    est = method_estimator(method, profile, float(noise_sigma))
    if hasattr(est, "strict"):
        est.strict = True
    return est


def load_stamps(path: str | Path, what: str, ndim: tuple[int, ...]) -> np.ndarray:
    """A ``.npy`` array of a user's, with one clear error when it is missing or malformed."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{what} file {path} does not exist")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{what} file {path} is not a readable .npy array: {exc}") from None
    if arr.ndim not in ndim:
        raise InputError(
            f"{what} in {path} must have {' or '.join(map(str, ndim))} dimensions, "
            f"got shape {arr.shape}"
        )
    return arr


def _response(result: Any) -> np.ndarray | None:
    """A result's per-stamp shear response, (N, 2) (``extra["response"]``: AnaCal) or (N, 2, 2)
    (``extra["R"]``: metacalibration); None for a method that measures a shear."""
    n = len(result)
    for key, shape in (("response", (n, 2)), ("R", (n, 2, 2))):
        val = result.extra.get(key)
        if isinstance(val, np.ndarray) and val.shape == shape:
            return val
    return None


def catalogue_kind(result: Any) -> str:
    """``"shear"`` (per-stamp ``g``) or ``"ellipticity"`` (per-stamp ``e`` and response ``R``):
    what an estimator's result measures, read from its ``extra`` (a response there: an
    ellipticity)."""
    return "shear" if _response(result) is None else "ellipticity"


def write_catalogue(path: str | Path, result: Any) -> Path:
    """One row per stamp, columns named for what they hold (module docstring): ``index, g1, g2,
    flags``, or for an ellipticity with a response ``index, e1, e2, R1, R2, flags``, then every
    other per-stamp column the estimator gives (size, flux, s2n, ...); ``.csv`` or ``.npz``,
    written atomically."""
    path = Path(path)
    n = len(result)
    response = _response(result)
    cols: dict[str, np.ndarray] = {"index": np.arange(n)}
    if response is None:
        cols.update(g1=result.g1, g2=result.g2)
    elif response.ndim == 2:
        cols.update(e1=result.g1, e2=result.g2, R1=response[:, 0], R2=response[:, 1])
    else:
        cols.update(
            e1=result.g1,
            e2=result.g2,
            **{f"R{i + 1}{j + 1}": response[:, i, j] for i in (0, 1) for j in (0, 1)},
        )
    cols["flags"] = result.flags
    for name in ("size", "flux"):
        if getattr(result, name) is not None:
            cols[name] = getattr(result, name)
    for key, val in result.extra.items():
        if isinstance(val, np.ndarray) and val.ndim == 1 and len(val) == n and key not in cols:
            cols[key] = val
    if path.suffix == ".npz":
        save_npz(path, **cols)
    elif path.suffix == ".csv":
        lines = [",".join(cols)] + [",".join(_cell(cols[c][i]) for c in cols) for i in range(n)]
        write_text(path, "\n".join(lines) + "\n")
    else:
        raise ConfigError(f"catalogue {path} must end in .csv or .npz")
    return path


def read_catalogue(path: str | Path) -> dict[str, np.ndarray]:
    """The columns of a catalogue :func:`write_catalogue` wrote (``.csv`` or ``.npz``)."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"catalogue {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    if path.suffix != ".csv":
        raise ConfigError(f"catalogue {path} must end in .csv or .npz")
    rows = path.read_text().splitlines()
    if not rows:
        raise InputError(f"catalogue {path} is empty")
    names = rows[0].split(",")
    table = np.array([r.split(",") for r in rows[1:]], dtype=object).reshape(-1, len(names))
    return {c: np.asarray([_parse(v) for v in table[:, i]]) for i, c in enumerate(names)}


def ensemble_shear(catalogue: str | Path | dict[str, np.ndarray]) -> tuple[float, float]:
    """The shear ``(g1, g2)`` of a catalogue's stamps (a path, or the columns of
    :func:`read_catalogue`), over its unflagged rows with finite values.

    An ellipticity catalogue (``e1, e2, R1, R2``): ``g_i = sum(e_i) / sum(R_i)`` (with a full
    response ``R11 .. R22``: ``<R>^-1 <e>``). A shear catalogue (``g1, g2``): the mean of ``g``.
    """
    cols = dict(read_catalogue(catalogue) if isinstance(catalogue, (str, Path)) else catalogue)
    if {"e1", "e2", "R1", "R2"} <= set(cols):
        names = ["e1", "e2", "R1", "R2"]
    elif {"e1", "e2", "R11", "R12", "R21", "R22"} <= set(cols):
        names = ["e1", "e2", "R11", "R12", "R21", "R22"]
    elif {"g1", "g2"} <= set(cols):
        names = ["g1", "g2"]
    else:
        raise InputError(f"a catalogue needs columns g1, g2 or e1, e2, R1, R2; got {sorted(cols)}")
    data = np.stack([np.asarray(cols[c], np.float64) for c in names], axis=1)
    ok = np.all(np.isfinite(data), axis=1)
    if "flags" in cols:
        ok &= np.asarray(cols["flags"]) == 0
    if not ok.any():
        raise InputError(f"no unflagged row with finite {', '.join(names)} in the catalogue")
    d = data[ok]
    if names[0] == "g1":
        return float(d[:, 0].mean()), float(d[:, 1].mean())
    if len(names) == 4:
        return float(d[:, 0].sum() / d[:, 2].sum()), float(d[:, 1].sum() / d[:, 3].sum())
    g = np.linalg.solve(d[:, 2:].mean(axis=0).reshape(2, 2), d[:, :2].mean(axis=0))
    return float(g[0]), float(g[1])


def _parse(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _cell(v: Any) -> str:
    return str(int(v)) if np.issubdtype(np.asarray(v).dtype, np.integer) else repr(float(v))

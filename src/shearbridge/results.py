"""Reading what the measuring steps wrote: the bounds and the per-galaxy measurements.

The steps write, the summaries and later steps read; both ask :class:`shearbridge.layout.Layout`
where. A missing file names the command that makes it.
"""

from __future__ import annotations

import numpy as np

from shearbridge.config import Profile
from shearbridge.errors import MissingFileError
from shearbridge.layout import Layout

__all__ = ["load_crlb_unit", "load_crlb", "load_measured"]


def load_crlb_unit(profile: Profile) -> tuple[np.ndarray, float]:
    """(n_crlb, 2) per-galaxy sigma_CRLB(g1, g2) at unit noise, and the wall seconds it took."""
    path = Layout(profile).bound()
    if not path.exists():
        raise MissingFileError(
            f"missing {path}: run `python -m shearbridge crlb --profile {profile.name}`"
        )
    with np.load(path) as z:
        return np.stack([z["sigma_g1"], z["sigma_g2"]], axis=1), float(z["wall_s"])


def load_crlb(profile: Profile, noise_sigma: float) -> np.ndarray:
    """(n_crlb, 2) per-galaxy sigma_CRLB(g1, g2) at ``noise_sigma``."""
    return noise_sigma * load_crlb_unit(profile)[0]


def load_measured(
    profile: Profile, method: str, sigma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(estimate - truth (N, 2), usable (N,), flags (N,), truth (N, 2)) of one method's comparison
    run on the CRLB set, from the ``.npz`` the compare step writes beside its result."""
    from shearbridge.estimators.base import usable

    path = Layout(profile).result("compare", method, sigma, suffix=".npz")
    if not path.exists():
        raise MissingFileError(
            f"missing {path}: run `python -m shearbridge compare --method {method} "
            f"--noise {sigma:g} --profile {profile.name}`"
        )
    with np.load(path) as z:
        g = np.asarray(z["g"], np.float64)
        true, flags = np.asarray(z["true"], np.float64), np.asarray(z["flags"])
    return g - true, usable(g, flags), flags, true

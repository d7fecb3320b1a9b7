"""The dataset catalogue: which datasets a profile has, and what determines their bytes.

Each dataset has a fixed stream id (:data:`STREAM_ID`, the ``SeedSequence`` spawn key of
its randomness; see :mod:`shearbridge.sim.datasets`), a simulation config and a size
(:func:`dataset_specs`). :func:`spec_hash` hashes everything that determines a dataset's
arrays; a cached dataset whose manifest carries another hash is stale.
Generation, caching and loading live in :mod:`shearbridge.sim.datasets`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from shearbridge.config import ConfigError, Profile, SimConfig, config_hash
from shearbridge.sim import stamps as simmod

__all__ = [
    "STREAM_ID",
    "FORMAT_VERSION",
    "PSF_TEST_G",
    "DatasetSpec",
    "dataset_specs",
    "get_spec",
    "spec_hash",
]

#: Stream id of each dataset (the SeedSequence spawn key); never reuse or renumber.
STREAM_ID: dict[str, int] = {
    "train": 0,
    "test": 1,
    "shear": 2,
    "test_exp": 3,
    "test_sersic": 4,
    "test_bulge_disk": 5,
    "test_moffat": 6,
    "test_wide_psf": 7,
    "train_mix": 8,
    "shear_psf": 9,
}
#: Reduced shear of the anisotropic PSF of the ``shear_psf`` set (along component 1).
PSF_TEST_G = 0.05
#: Bumped when the on-disk layout or the generation algorithm changes (invalidates caches).
FORMAT_VERSION = 2  # 2: sixteen-stamp shear test (orientations x +-g x +-n)


@dataclass(frozen=True)
class DatasetSpec:
    """What one dataset holds.

    ``n_objects`` counts galaxies; a shear-test set holds ``16 * n_objects`` stamps.
    """

    name: str
    sim: SimConfig
    n_objects: int
    stream_id: int

    @property
    def n_stamps(self) -> int:
        return simmod.SHEAR_TEST_STAMPS * self.n_objects if self.sim.shear_test else self.n_objects

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name.replace("_", "").isalnum():
            raise ConfigError(f"name must be an alphanumeric string, got {self.name!r}")
        for field, low in (("n_objects", 1), ("stream_id", 0)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{self.name}.{field} must be an integer >= {low}, got {value!r}")
        try:
            simmod.check_sim(self.sim)
        except ConfigError as exc:
            raise ConfigError(f"{self.name}.sim.{exc}") from None


def dataset_specs(profile: Profile) -> dict[str, DatasetSpec]:
    """Every dataset of a profile, by name (ShearNet's 2025 simulation unless noted).

    ``train`` / ``test``: ``n_train`` / ``n_test`` objects (the training code makes the
    shuffled validation split). ``shear``: ``n_shear_pairs`` galaxies in shear-test mode
    (4 stamps each). Robustness test sets of ``max(256, n_test // 4)`` objects:
    ``test_exp``, ``test_sersic``, ``test_bulge_disk`` (galaxy model), ``test_moffat``
    (Moffat PSF, FWHM 0.7"), ``test_wide_psf`` (Gaussian PSF sigma 0.30").
    ``train_mix``: ``n_train // 4`` objects of a uniform gauss/exp/sersic/bulge_disk mixture
    (a quarter: Sersic and bulge+disk stamps are slow to draw; the build must fit an hour).
    ``shear_psf``: the shear test with a PSF sheared by :data:`PSF_TEST_G` along ``g1``
    (``n_shear_pairs // 4`` galaxies): additive bias and PSF leakage.
    """
    base = SimConfig()
    n_rob = max(256, profile.n_test // 4)
    table = {
        "train": (base, profile.n_train),
        "test": (base, profile.n_test),
        "shear": (dataclasses.replace(base, shear_test=True), profile.n_shear_pairs),
        "test_exp": (dataclasses.replace(base, galaxy="exp"), n_rob),
        "test_sersic": (dataclasses.replace(base, galaxy="sersic"), n_rob),
        "test_bulge_disk": (dataclasses.replace(base, galaxy="bulge_disk"), n_rob),
        "test_moffat": (dataclasses.replace(base, psf="moffat", psf_fwhm_arcsec=0.7), n_rob),
        "test_wide_psf": (dataclasses.replace(base, psf_sigma_arcsec=0.30), n_rob),
        "train_mix": (dataclasses.replace(base, galaxy="mix"), max(256, profile.n_train // 4)),
        "shear_psf": (
            dataclasses.replace(base, shear_test=True, psf_g1=PSF_TEST_G),
            max(2, profile.n_shear_pairs // 4),
        ),
    }
    return {
        name: DatasetSpec(name=name, sim=s, n_objects=int(n), stream_id=STREAM_ID[name])
        for name, (s, n) in table.items()
    }


def get_spec(name: str, profile: Profile) -> DatasetSpec:
    """The spec of dataset ``name`` of ``profile``; :class:`ConfigError` if unknown."""
    specs = dataset_specs(profile)
    if name not in specs:
        raise ConfigError(f"unknown dataset {name!r}; known: {sorted(specs)}")
    return specs[name]


def spec_hash(spec: DatasetSpec, seed: int) -> str:
    """Hash of everything that determines a dataset's bytes."""
    return config_hash(
        spec.sim,
        {
            "name": spec.name,
            "n_objects": spec.n_objects,
            "stream_id": spec.stream_id,
            "seed": int(seed),
            "format": FORMAT_VERSION,
            "gsparams": simmod.GSPARAMS_DICT,
        },
    )

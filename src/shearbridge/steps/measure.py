"""What every measuring step shares: a registered method's estimator at one noise level, timed.

A network's estimator loads the run trained at the same noise level from the profile's
data folder (:func:`network_loader`); a classical estimator is built from the profile's
seed. :func:`timed_measure` compiles / warms up on a few stamps first, then times the batch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shearbridge import paths, study
from shearbridge.config import ConfigError, Profile, active_profile, noise_tag
from shearbridge.errors import InputError, MissingFileError
from shearbridge.io import save_npz, write_text

__all__ = ["network_loader", "require_trained", "population_network", "population_network_path", "method_estimator",
           "user_estimator", "timed_measure", "timed_result", "result_path", "load_measured", "load_stamps",
           "write_catalogue", "progress_bar", "WARMUP_STAMPS"]

#: Stamps of the untimed warm-up call of a classical estimator (networks: one full batch).
WARMUP_STAMPS = 8


def network_loader(profile: Profile):
    """``load(experiment, noise_sigma) -> Trained``: the profile's run trained at that noise level."""
    def load(experiment: str, sigma: float) -> Any:
        return require_trained(paths.run_dir(experiment, sigma, profile), experiment, sigma, profile.name)

    return load


def population_network_path(profile: Profile, name: int | str) -> Path:
    """Where the population study keeps network entry ``name`` (a seed, ``abl_<name>``, ``moments``)."""
    return paths.population_dir(profile) / f"psfnet_{name}.msgpack"


def population_network(profile: Profile, name: int | str) -> tuple[Any, Any]:
    """``(model, params)`` of a trained population-study entry (a seed, ``abl_<name>``) or of
    ``"moments"`` (the first seed's data-initialised parameters: the moments-only estimator)."""
    from flax import serialization

    from shearbridge.config.population import population_plan
    from shearbridge.models.psfnet import PSFNet

    path = population_network_path(profile, name)
    if not path.exists():
        raise MissingFileError(f"{path} is missing: run `python -m shearbridge population train --profile "
                               f"{profile.name}` first")
    kwargs = {n: k for n, _, k in population_plan(profile).entries()}.get(str(name), {})
    return PSFNet(**kwargs), serialization.msgpack_restore(path.read_bytes())


def require_trained(run: Path, experiment: str, sigma: float, profile_name: str) -> Any:
    """The model trained in ``run`` for ``experiment`` at noise ``sigma``; a missing one names the
    ``train`` command that makes it, one trained for something else is refused."""
    from shearbridge.models import MODEL_FILE, load_trained

    if not (Path(run) / MODEL_FILE).exists():
        raise MissingFileError(
            f"no trained model in {run} (has training finished?): train it with `python -m shearbridge "
            f"train --config {experiment} --noise {sigma:g} --profile {profile_name}`")
    trained = load_trained(run)
    trained.check_trained_for(experiment, sigma, run)
    return trained


def method_estimator(method: str, profile: Profile, sigma: float) -> Any:
    """The estimator of registered ``method`` at pixel noise ``sigma`` (image units)."""
    context = study.MethodContext(seed=profile.seed, noise_sigma=sigma, load_network=network_loader(profile),
                                  load_population=lambda name: population_network(profile, name))
    return study.get_method(method).estimator(context)


def user_estimator(method: str, sigma: float, profile: Profile | None = None) -> Any:
    """A registered method's estimator for a user's own stamps (see :func:`shearbridge.estimator`):
    a network also checks the stamps' PSF and pixel scale against its training data."""
    profile = profile or active_profile()
    m = study.get_method(method)
    if m.build is None:
        raise ConfigError(f"method {method!r} ({m.kind}) does not measure stamps; measuring methods: "
                          f"{[x.name for x in study.methods(available_only=False) if x.build is not None]}")
    if not m.available():
        raise ConfigError(f"method {method!r} is not installed here ({m.description})")
    est = method_estimator(method, profile, float(sigma))
    if hasattr(est, "strict"):
        est.strict = True
    return est


def progress_bar(total: int, desc: str, unit: str = "stamp") -> tqdm:
    """The steps' progress bar: on a terminal only (quiet in logs), gone when done."""
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None, mininterval=1.0)


def timed_measure(method: str, profile: Profile, sigma: float, images: np.ndarray, psf: np.ndarray,
                  scale: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(g_hat (N, 2), flags (N,), wall seconds) of one method on ``images``, compilation excluded
    (:func:`timed_result`)."""
    res, wall = timed_result(method, profile, sigma, images, psf, scale)
    return res.g, np.asarray(res.flags), wall


def timed_result(method: str, profile: Profile, sigma: float, images: np.ndarray, psf: np.ndarray,
                 scale: float) -> tuple[Any, float]:
    """The method's full :class:`~shearbridge.estimators.base.EstimatorResult` on ``images`` (with
    its ``extra``, e.g. an ensemble-response estimator's ``response``) and the wall seconds,
    compilation excluded: the estimator is warmed up on a few stamps first. Estimators with a
    ``progress`` attribute (the slow classical ones) drive a progress bar."""
    est = method_estimator(method, profile, sigma)
    warm = getattr(est, "warmup_stamps", WARMUP_STAMPS)
    est.measure(images[: min(len(images), warm)], psf, scale, sigma)
    with progress_bar(len(images), f"{method} at noise {sigma:g}") as bar:
        if hasattr(est, "progress"):
            est.progress = bar.update
        t0 = time.perf_counter()
        res = est.measure(images, psf, scale, sigma)
        wall = time.perf_counter() - t0
    return res, wall


def result_path(profile: Profile, method: str, sigma: float, kind: str = "compare") -> Path:
    """``results/<kind>/<method>/noise<tag>.json`` of the profile (kind: compare or bias)."""
    return paths.results_dir(profile) / kind / method / f"noise{noise_tag(sigma)}.json"


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
        raise InputError(f"{what} in {path} must have {' or '.join(map(str, ndim))} dimensions, got shape {arr.shape}")
    return arr


def write_catalogue(path: str | Path, result: Any) -> Path:
    """One row per stamp: ``index, g1, g2, flags`` and every other per-stamp column the estimator
    gives (size, flux, responses, ...); ``.csv`` or ``.npz``, written atomically."""
    path = Path(path)
    n = len(result)
    cols: dict[str, np.ndarray] = {"index": np.arange(n), "g1": result.g1, "g2": result.g2, "flags": result.flags}
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


def _cell(v: Any) -> str:
    return str(int(v)) if np.issubdtype(np.asarray(v).dtype, np.integer) else repr(float(v))


def load_measured(profile: Profile, method: str, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(estimate - truth (N, 2), usable (N,), flags (N,), truth (N, 2)) of one method's comparison
    run on the CRLB set, from the ``.npz`` the compare step writes beside its result."""
    from shearbridge.estimators.base import usable

    path = result_path(profile, method, sigma).with_suffix(".npz")
    if not path.exists():
        raise MissingFileError(f"missing {path}: run `python -m shearbridge compare --method {method} "
                               f"--noise {sigma:g} --profile {profile.name}`")
    with np.load(path) as z:
        g, true, flags = np.asarray(z["g"], np.float64), np.asarray(z["true"], np.float64), np.asarray(z["flags"])
    return g - true, usable(g, flags), flags, true

"""Every method on the same stamps: RMSE against the per-galaxy Cramer-Rao bound, bias, speed.

The comparison set is the first ``profile.n_crlb`` objects of the test set (the
same galaxies and the same noise fields for every method, at every noise level
of the grid). For each of them the Cramer-Rao bound on (g1, g2) is computed once
at unit noise and scaled (it is linear in the noise sigma), and cached in
``src/data/<profile>/crlb/test.npz``.

Methods (:data:`METHODS`): the trained networks (``baseline``, ``shapenet``: predictions of
the run trained at the same noise level), the JAX maximum-likelihood fit
(``mlfit``), GalSim HSM (``hsm_regauss``, ``hsm_ksb``) and ngmix (``ngmix``,
only where the package is installed). Each result file records the method's
throughput (galaxies per second on this machine, after compilation/warm-up).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from . import paths
from .config import Profile, noise_tag
from .io import read_json, save_npz, write_json

__all__ = ["METHODS", "NETWORKS", "crlb_path", "compute_crlb", "load_crlb", "run_method", "run_bias",
           "method_available", "ratio_with_error"]

NETWORKS = ("baseline", "shapenet")
CLASSICAL = ("mlfit", "hsm_regauss", "hsm_ksb", "ngmix")
METHODS = NETWORKS + CLASSICAL
#: Methods whose m, c are measured at every noise level (bias.json; ``*_cal``: response-calibrated).
BIAS_GRID_METHODS = ("baseline", "shapenet", "mlfit", "baseline_cal", "shapenet_cal")
CRLB_PERCENTILES = (16, 84)  # the band drawn around the bound in fig_rmse_vs_noise


def _estimator(method: str, profile: Profile) -> Any:
    if method == "mlfit":
        from .estimators.mlfit import MLFitEstimator

        return MLFitEstimator(model="gauss", seed=profile.seed)
    if method in ("hsm_regauss", "hsm_ksb"):
        from .estimators.hsm import HSMEstimator

        return HSMEstimator(method=method.split("_")[1].upper())
    if method == "ngmix":
        from .estimators.ngmix_adapter import NgmixMLEstimator

        return NgmixMLEstimator(model="gauss", seed=profile.seed)
    raise ValueError(f"unknown method {method!r}; known: {METHODS}")


def method_available(method: str) -> bool:
    """False only for ngmix where the package is not installed."""
    if method != "ngmix":
        return method in METHODS
    from .estimators.ngmix_adapter import NgmixUnavailable, import_ngmix

    try:
        import_ngmix()
    except NgmixUnavailable:
        return False
    return True


def crlb_path(profile: Profile) -> Path:
    return paths.profile_dir(profile) / "crlb" / "test.npz"


def compute_crlb(profile: Profile) -> Path:
    """Per-galaxy CRLB of the comparison set at unit noise, cached beside the profile's data."""
    from .data import load_dataset
    from .estimators.crlb import crlb_for_dataset

    ds = load_dataset("test", profile)
    n = profile.n_crlb
    labels = {k: np.asarray(v[:n]) for k, v in ds.labels.items()}
    t0 = time.perf_counter()
    out = crlb_for_dataset(labels, ds.sim, 1.0)
    wall = time.perf_counter() - t0
    path = crlb_path(profile)
    save_npz(path, sigma_g1=out["sigma_g1"], sigma_g2=out["sigma_g2"], n=np.asarray(n), wall_s=np.asarray(wall))
    return path


def load_crlb(profile: Profile, noise_sigma: float) -> np.ndarray:
    """(n_crlb, 2) per-galaxy sigma_CRLB(g1, g2) at ``noise_sigma``."""
    path = crlb_path(profile)
    if not path.exists():
        raise FileNotFoundError(f"missing {path}: run `python -m shearbridge crlb --profile {profile.name}`")
    with np.load(path) as z:
        return noise_sigma * np.stack([z["sigma_g1"], z["sigma_g2"]], axis=1)


def ratio_with_error(err: np.ndarray, crlb: np.ndarray, rng: np.random.Generator, n_boot: int) -> dict[str, float]:
    """RMSE(g)/RMS(CRLB) over both components, with a paired bootstrap error.

    ``err`` is (N, 2) of estimate minus truth and ``crlb`` (N, 2) the per-galaxy
    bounds on the same objects; resampling galaxies keeps the pairing.
    """
    def stat(idx: np.ndarray) -> tuple[float, float, float]:
        rmse = float(np.sqrt(np.mean(err[idx] ** 2)))
        rms_crlb = float(np.sqrt(np.mean(crlb[idx] ** 2)))
        return rmse, rms_crlb, rmse / rms_crlb

    n = len(err)
    point = stat(np.arange(n))
    boots = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)])
    sd = boots.std(axis=0, ddof=1)
    return {"rmse_g": point[0], "rmse_g_err": float(sd[0]), "rms_crlb": point[1],
            "ratio": point[2], "ratio_err": float(sd[2]), "n": int(n)}


def _timed_measure(est: Any, stamps: np.ndarray, psf: np.ndarray, scale: float, sigma: float):
    """Warm up (compile) on a few stamps, then time the whole batch."""
    est.measure(stamps[: min(len(stamps), 8)], psf, scale, sigma)
    t0 = time.perf_counter()
    res = est.measure(stamps, psf, scale, sigma)
    return res, time.perf_counter() - t0


def _network_predict(method: str, profile: Profile, sigma: float, images: np.ndarray) -> tuple[np.ndarray, float]:
    from .models import load_trained

    trained = load_trained(paths.run_dir(method, sigma, profile))
    trained.predict(images[: min(len(images), 256)], 256)  # compile
    t0 = time.perf_counter()
    pred = trained.predict(images, 256)
    return np.asarray(pred[:, :2], np.float64), time.perf_counter() - t0


def _measure(method: str, profile: Profile, sigma: float, images: np.ndarray, psf: np.ndarray,
             scale: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(g_hat (N, 2), flags (N,), wall seconds) of one method on ``images``.

    A network (:data:`NETWORKS`) or an ablation experiment (``configs.ablation_names()``)
    is the run trained at ``sigma``; anything else is a classical estimator.
    """
    from .configs import ablation_names

    if method in NETWORKS or method in ablation_names():
        g, wall = _network_predict(method, profile, sigma, images)
        return g, np.zeros(len(g), np.int64), wall
    res, wall = _timed_measure(_estimator(method, profile), images, psf, scale, sigma)
    return res.g, np.asarray(res.flags), wall


def result_path(profile: Profile, method: str, sigma: float, kind: str = "compare") -> Path:
    return paths.results_dir(profile) / kind / method / f"noise{noise_tag(sigma)}.json"


def run_method(method: str, profile: Profile, sigma: float) -> dict[str, Any]:
    """RMSE, RMSE/CRLB and throughput of one method at one noise level, written as JSON."""
    from . import provenance
    from .data import load_dataset

    ds = load_dataset("test", profile)
    n = profile.n_crlb
    images = ds.images(sigma)[:n]
    true = ds.targets(2)[:n]
    g, flags, wall = _measure(method, profile, sigma, images, np.asarray(ds.psf), ds.sim.pixel_scale_arcsec)
    ok = (flags == 0) & np.all(np.isfinite(g), axis=1)
    crlb = load_crlb(profile, sigma)
    rng = np.random.default_rng(np.random.SeedSequence([profile.seed, 0xC0DE, int(-np.log10(sigma) * 100)]))
    result = {
        "method": method, "noise_sigma": sigma, "profile": profile.name, "n": int(n),
        "n_flagged": int((~ok).sum()), "flagged_fraction": float((~ok).mean()),
        "wall_s": wall, "galaxies_per_s": n / wall,
        "per_component_rmse": [float(np.sqrt(np.mean((g[ok, k] - true[ok, k]) ** 2))) for k in (0, 1)],
        "hardware": provenance.hardware(),
        **ratio_with_error(g[ok] - true[ok], crlb[ok], rng, profile.bootstrap),
    }
    path = result_path(profile, method, sigma)
    write_json(path, result)
    save_npz(path.with_suffix(".npz"), g=g, flags=flags, true=true)
    return result


def run_bias(method: str, profile: Profile, sigma: float) -> dict[str, Any]:
    """m and c from the paired shear-test set at one noise level, written as JSON.

    ``<network>_cal`` methods (e.g. ``shapenet_cal``): the network's raw and
    response-calibrated m, c (:func:`.estimators.response.run_calibrated_bias`).
    """
    if method.endswith("_cal"):
        from .estimators.response import run_calibrated_bias

        return run_calibrated_bias(method, profile, sigma)
    from .data import load_dataset
    from .estimators.bias import paired_shear_bias

    ds = load_dataset("shear", profile)
    images = ds.images(sigma)
    g, flags, wall = _measure(method, profile, sigma, images, np.asarray(ds.psf), ds.sim.pixel_scale_arcsec)
    bias = paired_shear_bias(g, ds.labels, flags=flags, n_blocks=50)
    snr = np.asarray(ds.labels["flux"]) / (ds.sim.stamp_size_px * sigma)
    result = {"method": method, "noise_sigma": sigma, "profile": profile.name, "n_stamps": len(images),
              "median_snr": float(np.median(snr)), "wall_s": wall, **bias}
    write_json(result_path(profile, method, sigma, kind="bias"), result)
    return result


def bias_summary(profile: Profile, methods: list[str]) -> dict[str, Any]:
    """m, c (and median S/N) of each method at every noise level of the grid (bias.json)."""
    from .config import LSST_C_REQUIREMENT, LSST_M_REQUIREMENT

    return {"profile": profile.name, "methods": methods,
            "requirements": {"m": LSST_M_REQUIREMENT, "c": LSST_C_REQUIREMENT},
            "bias": {m: {noise_tag(s): load_result(profile, m, s, "bias") for s in profile.noise_grid}
                     for m in methods}}


def load_result(profile: Profile, method: str, sigma: float, kind: str = "compare") -> dict[str, Any]:
    return read_json(result_path(profile, method, sigma, kind))


def summary(profile: Profile, methods: list[str], bias_noise: list[float]) -> dict[str, Any]:
    """All comparison and bias results of the profile, for the figure and number scripts."""
    with np.load(crlb_path(profile)) as z:
        crlb1 = np.stack([z["sigma_g1"], z["sigma_g2"]], axis=1)
        crlb_wall = float(z["wall_s"])
    out: dict[str, Any] = {"profile": profile.name, "methods": methods,
                           "crlb_unit": {"rms": float(np.sqrt(np.mean(crlb1 ** 2))),
                                         "median": float(np.median(crlb1)),
                                         "p16": float(np.percentile(crlb1, CRLB_PERCENTILES[0])),
                                         "p84": float(np.percentile(crlb1, CRLB_PERCENTILES[1])),
                                         "wall_s": crlb_wall},
                           "compare": {}, "bias": {}}
    for m in methods:
        out["compare"][m] = {noise_tag(s): load_result(profile, m, s) for s in profile.noise_grid}
        out["bias"][m] = {noise_tag(s): load_result(profile, m, s, "bias") for s in bias_noise}
    return out

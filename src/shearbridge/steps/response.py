"""Pipeline step: the response calibration of a trained network on the paired shear-test set.

The metacal images of the first shear-test stamps are made once per noise level
(:func:`response_images`, kept atomically under ``src/data/<profile>/response/``) and
shared by every calibrated network; :func:`run_calibrated_bias` writes raw and
calibrated m, c of one ``<network>_cal`` method (:mod:`shearbridge.stats.response` holds
the response itself).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from shearbridge import paths, study
from shearbridge.config import ConfigError, noise_tag, seeds
from shearbridge.io import save_npz, write_json
from shearbridge.stats.bias import paired_shear_bias
from shearbridge.stats.response import (
    RESPONSE_DELTA,
    SHEARED_TYPES,
    calibrate,
    finite_difference_response,
    moments_response,
    sheared_images,
)

__all__ = ["N_RESPONSE_STAMPS", "run_calibrated_bias", "response_images_path", "response_images"]

#: At most this many shear-test stamps (whole galaxies of 4) get sheared images: metacal
#: images cost ~40 ms per stamp and type set (~80 ms with fix_noise) on one busy core.
N_RESPONSE_STAMPS = 256


def run_calibrated_bias(method: str, profile: Any, sigma: float,
                        n_response: int = N_RESPONSE_STAMPS) -> dict[str, Any]:
    """Raw and response-calibrated m, c of a trained network on the paired shear-test set.

    ``method`` is ``<network>_cal``. The response ``R`` is measured on the first
    ``n_response`` stamps of the shear-test set (whole galaxies), every stamp's estimate
    is calibrated with it and the paired test is run on the calibrated estimates. Errors:
    ``m*_err`` adds the jackknife error of the paired test and the propagated error of
    ``R`` in quadrature (conservative: their positive correlation is ignored);
    ``m*_err_stat`` is the paired test's alone. Written like :func:`shearbridge.steps.bias.run_bias`.
    """
    from shearbridge.models import load_trained
    from shearbridge.sim.datasets import load_dataset
    from shearbridge.steps.measure import result_path

    calibrated = [m.name for m in study.methods(available_only=False) if m.calibrates]
    if method not in calibrated:
        raise ConfigError(f"calibrated method must be one of {calibrated}, got {method!r}")
    network = study.get_method(method).calibrates
    run = study.run_of(network)
    ds = load_dataset("shear", profile)
    images = ds.images(sigma)
    psf, scale = np.asarray(ds.psf), ds.sim.pixel_scale_arcsec
    trained = load_trained(paths.run_dir(run, sigma, profile))
    predict = lambda x: np.asarray(trained.predict(x, 256))[:, :2]  # noqa: E731
    predict(images[: min(len(images), 256)])  # compile
    t0 = time.perf_counter()
    g_raw = predict(images)
    wall = time.perf_counter() - t0
    raw = paired_shear_bias(g_raw, ds.labels, n_blocks=50)
    sets, seed = response_images(profile, sigma, n_response, dataset=ds)
    n_resp = len(sets[SHEARED_TYPES[0]])
    resp = finite_difference_response(predict, images[:n_resp], psf, scale, sigma, delta=RESPONSE_DELTA,
                                      fix_noise=True, seed=seed, sets=sets)
    ref = moments_response(sets, ds.sim)
    cal = paired_shear_bias(calibrate(g_raw, resp.R), ds.labels, n_blocks=50)
    for k in (0, 1):
        name, r, r_err = f"m{k + 1}", resp.R[k, k], resp.R_err[k, k]
        cal[f"{name}_err_stat"] = cal[f"{name}_err"]
        cal[f"{name}_err"] = math.hypot(cal[f"{name}_err"], (1.0 + raw[name]) * r_err / r**2)
    snr = np.asarray(ds.labels["flux"]) / (ds.sim.stamp_size_px * sigma)
    result = {"method": method, "network": network, "noise_sigma": sigma, "profile": profile.name,
              "n_stamps": len(images), "median_snr": float(np.median(snr)), "wall_s": wall, **cal,
              "raw": raw, "R": resp.R.tolist(), "R_err": resp.R_err.tolist(), "n_response": n_resp,
              "delta": resp.delta, "response_extra": resp.extra,
              "R_moments": ref.R.tolist(), "R_moments_err": ref.R_err.tolist()}
    write_json(result_path(profile, method, sigma, kind="bias"), result)
    return result


def response_images_path(profile: Any, sigma: float) -> Path:
    """Where :func:`response_images` keeps the sheared images of one profile and noise level."""
    return paths.profile_dir(profile) / "response" / f"sheared_noise{noise_tag(sigma)}.npz"


def response_images(profile: Any, sigma: float, n_response: int = N_RESPONSE_STAMPS, *,
                    dataset: Any = None) -> tuple[dict[str, np.ndarray], int]:
    """The metacal images ``1p, 1m, 2p, 2m`` of the first shear-test stamps, and their noise seed.

    Every calibrated network at one noise level is calibrated on the same images, so
    they are made once (GalSim, ~80 ms per stamp and set) and kept at
    :func:`response_images_path`; a kept file is used when its stamp count, step,
    seed and noise fix match, and is remade otherwise. ``n_response`` is rounded
    down to whole galaxies (4 stamps each). Written atomically.
    """
    from shearbridge.sim.datasets import load_dataset

    ds = dataset if dataset is not None else load_dataset("shear", profile)
    n = int(min(len(ds), max(4, n_response)) // 4 * 4)
    seed = int(seeds.seed_sequence(profile.seed, "response_images", round(-math.log10(sigma) * 100))
               .generate_state(1)[0])
    meta = np.asarray([n, RESPONSE_DELTA, seed, 1.0])  # stamps, step, seed, fix_noise
    path = response_images_path(profile, sigma)
    if path.exists():
        with np.load(path) as z:
            if "meta" in z and np.array_equal(z["meta"], meta):
                return {t: z[t] for t in SHEARED_TYPES}, seed
    sets, _ = sheared_images(ds.images(sigma)[:n], np.asarray(ds.psf), ds.sim.pixel_scale_arcsec, sigma,
                             delta=RESPONSE_DELTA, fix_noise=True, seed=seed)
    sets = {t: np.asarray(sets[t], np.float32) for t in SHEARED_TYPES}
    save_npz(path, meta=meta, **sets)
    return sets, seed

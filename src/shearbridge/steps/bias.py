"""Pipeline step: m and c of one method from the paired shear-test set at one noise level.

Response-calibrated network methods (``<network>_cal`` in the registry) go through
:func:`shearbridge.steps.response.run_calibrated_bias`; an estimator that returns an ellipticity
with its shear response (``extra["response"]``, AnaCal) is scored by its ensemble shear
``sum e / sum R`` (:func:`shearbridge.stats.bias.paired_ensemble_bias`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shearbridge import study
from shearbridge.config import Profile
from shearbridge.io import write_json
from shearbridge.stats.bias import paired_ensemble_bias, paired_shear_bias
from shearbridge.stats.crlb import matched_filter_snr
from shearbridge.steps.measure import result_path, timed_result

__all__ = ["run_bias"]


def run_bias(method: str, profile: Profile, sigma: float) -> dict[str, Any]:
    """m and c from the paired shear-test set at one noise level, written as JSON."""
    if study.get_method(method).calibrates:
        from shearbridge.steps.response import run_calibrated_bias

        return run_calibrated_bias(method, profile, sigma)
    from shearbridge.sim.datasets import load_dataset

    ds = load_dataset("shear", profile)
    images = ds.images(sigma)
    res, wall = timed_result(method, profile, sigma, images, np.asarray(ds.psf), ds.sim.pixel_scale_arcsec)
    flags = np.asarray(res.flags)
    if "response" in res.extra:  # an ellipticity with its shear response (AnaCal): ensemble shear
        bias = paired_ensemble_bias(res.g, res.extra["response"], ds.labels, flags=flags, n_blocks=50)
        bias["shear_from"] = "sum e / sum R (ensemble response)"
        bias["config"] = {k: v for k, v in res.extra.items() if isinstance(v, (str, bool, int, float))}
    else:
        bias = paired_shear_bias(res.g, ds.labels, flags=flags, n_blocks=50)
    snr = np.asarray(ds.labels["flux"]) / (ds.sim.stamp_size_px * sigma)  # ShearNet's F / (L sigma)
    snr_mf = matched_filter_snr(ds.images(0.0), sigma)
    result = {"method": method, "noise_sigma": sigma, "profile": profile.name, "n_stamps": len(images),
              "median_snr": float(np.median(snr)), "median_snr_mf": float(np.median(snr_mf)), "wall_s": wall,
              "n_flagged": int(np.sum(np.asarray(flags) != 0)), **bias}
    write_json(result_path(profile, method, sigma, kind="bias"), result)
    return result

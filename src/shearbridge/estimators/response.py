"""Finite-difference shear response of any estimator, and the calibration it gives.

For a sample of stamps, each galaxy is sheared by ``+delta`` and ``-delta`` along each
component metacal-style -- deconvolve the PSF, shear, reconvolve with the PSF dilated
by ``1 + 2 delta``, with the 90-degree-rotated noise image added when ``fix_noise``
(all of it :class:`.metacal.Metacal`'s image machinery, reused unchanged; see its
docstring for the dilation and the noise treatment) -- and the estimator is run on
the four sheared sets. The response matrix is

    R_ij = < g_i(+delta e_j) - g_i(-delta e_j) > / (2 delta),

averaged over the sample (delete-one-block jackknife error over contiguous blocks
of stamps), and a calibrated estimate is ``g_cal = R^-1 g`` (:func:`calibrate`). For
a network ``g`` is its prediction on the original stamps, as the brief of the study
asks: the response is then measured on images that differ from the originals by
the 2 per cent dilated PSF and (with ``fix_noise``) a sqrt(2) larger, correlated
noise, so a network whose response depends on the PSF size or the S/N keeps a
residual bias after calibration; the paired shear test measures that residual.

:func:`run_calibrated_bias` is the pipeline step: the paired shear-test set of a
profile, a trained network, raw and calibrated m and c (``compare.run_bias`` calls it
for the methods ``baseline_cal`` and ``shapenet_cal``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .bias import jackknife, paired_shear_bias
from .metacal import Metacal

__all__ = ["SHEARED_TYPES", "N_RESPONSE_STAMPS", "RESPONSE_DELTA", "ResponseResult", "sheared_images",
           "response_from_estimates", "finite_difference_response", "calibrate",
           "calibrated_network_names", "run_calibrated_bias",
           "response_images_path", "response_images", "moments_response"]

#: Metacal image sets used for the response (component j, sign).
SHEARED_TYPES = ("1p", "1m", "2p", "2m")
#: At most this many shear-test stamps (whole galaxies of 4) get sheared images: metacal
#: images cost ~40 ms per stamp and type set (~80 ms with fix_noise) on one busy core.
N_RESPONSE_STAMPS = 256
#: Reduced-shear step of the finite-difference response (metacal's value).
RESPONSE_DELTA = 0.01


@dataclass
class ResponseResult:
    """``R`` (2, 2) with ``R[i, j] = d<g_i>/d g_j`` and its jackknife error ``R_err``.

    ``per_object`` (N, 2, 2): each stamp's finite-difference response.
    """

    R: np.ndarray
    R_err: np.ndarray
    per_object: np.ndarray
    delta: float
    extra: dict[str, Any] = field(default_factory=dict)


def sheared_images(stamps: np.ndarray, psf_image: np.ndarray, pixel_scale_arcsec: float,
                   noise_sigma: float, *, delta: float = RESPONSE_DELTA, fix_noise: bool = True,
                   seed: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Metacal image sets ``noshear, 1p, 1m, 2p, 2m`` (each (N, S, S)) and the
    reconvolution PSF image (S, S); ``delta`` is the reduced-shear step, ``noise_sigma``
    the pixel noise of ``stamps`` (image units; used only for the ``fix_noise`` image)."""
    mc = Metacal(estimator=None, step=delta, fix_noise=fix_noise, seed=seed)  # images only
    return mc.images(stamps, psf_image, pixel_scale_arcsec, noise_sigma)


def response_from_estimates(g: dict[str, np.ndarray], delta: float,
                            n_blocks: int = 50) -> ResponseResult:
    """Response matrix from estimates ``g[t]`` (N, 2) on the sets :data:`SHEARED_TYPES`.

    Objects with a non-finite estimate in any set are left out (counted in ``extra``).
    """
    missing = [t for t in SHEARED_TYPES if t not in g]
    if missing:
        raise ValueError(f"response needs estimates on the sheared sets {list(SHEARED_TYPES)}; "
                         f"missing {missing}")
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta!r}")
    arrs = {t: np.asarray(g[t], np.float64) for t in SHEARED_TYPES}
    n = arrs["1p"].shape[0]
    for t, a in arrs.items():
        if a.shape != (n, 2):
            raise ValueError(f"estimates on {t} have shape {a.shape}, expected ({n}, 2)")
    per = np.empty((n, 2, 2))
    per[:, :, 0] = (arrs["1p"] - arrs["1m"]) / (2 * delta)
    per[:, :, 1] = (arrs["2p"] - arrs["2m"]) / (2 * delta)
    keep = np.all(np.isfinite(per), axis=(1, 2))
    if keep.sum() < 2:
        raise ValueError(f"only {int(keep.sum())} objects have finite sheared estimates")
    good = per[keep]
    val, err = jackknife(lambda m: good[m].mean(axis=0).ravel(), int(keep.sum()), n_blocks)
    return ResponseResult(R=val.reshape(2, 2), R_err=err.reshape(2, 2), per_object=per, delta=delta,
                          extra={"n_used": int(keep.sum()), "n_dropped": int((~keep).sum())})


def finite_difference_response(predict: Callable[[np.ndarray], np.ndarray], stamps: np.ndarray,
                               psf_image: np.ndarray, pixel_scale_arcsec: float, noise_sigma: float,
                               *, delta: float = RESPONSE_DELTA, fix_noise: bool = True, seed: int | None = None,
                               n_blocks: int = 50,
                               sets: dict[str, np.ndarray] | None = None) -> ResponseResult:
    """Shear response of ``predict`` (stamps (N, S, S) -> reduced shear (N, 2)).

    Parameters
    ----------
    predict : callable
        The estimator; it sees the metacal images (dilated PSF), not the originals.
    stamps, psf_image
        (N, S, S) stamps and their (S, S) PSF image (with the pixel response).
    pixel_scale_arcsec, noise_sigma
        Pixel scale (arcsec/pixel) and pixel noise sigma of ``stamps`` (image units).
    delta : float
        Reduced-shear step (:data:`RESPONSE_DELTA`, as metacal).
    fix_noise, seed
        Metacal's correlated-noise fix and the seed of its noise images.
    sets : dict, optional
        The sheared images of ``stamps`` made with these settings (``1p, 1m, 2p, 2m``;
        :func:`response_images`), when already made; otherwise they are made here.
    """
    t0 = time.perf_counter()
    if sets is None:
        sets, _ = sheared_images(stamps, psf_image, pixel_scale_arcsec, noise_sigma, delta=delta,
                                 fix_noise=fix_noise, seed=seed)
    missing = [t for t in SHEARED_TYPES if t not in sets or len(sets[t]) != len(stamps)]
    if missing:
        raise ValueError(f"sheared image sets {missing} missing or not one per stamp ({len(stamps)})")
    t_img = time.perf_counter() - t0
    g = {t: np.asarray(predict(sets[t].astype(np.float32)), np.float64)[:, :2] for t in SHEARED_TYPES}
    res = response_from_estimates(g, delta, n_blocks)
    res.extra.update(images_wall_s=t_img, wall_s=time.perf_counter() - t0, fix_noise=fix_noise,
                     psf_dilation=1.0 + 2.0 * abs(delta), n=len(stamps))
    return res


def calibrate(g: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``R^-1 g`` for every row of ``g`` (N, 2); ``R`` (2, 2) must be invertible."""
    R = np.asarray(R, np.float64)
    if R.shape != (2, 2) or not np.all(np.isfinite(R)) or abs(np.linalg.det(R)) < 1e-12:
        raise ValueError(f"response matrix must be a finite invertible 2x2 matrix, got {R.tolist()}")
    return np.asarray(g, np.float64) @ np.linalg.inv(R).T


def calibrated_network_names(networks: tuple[str, ...]) -> tuple[str, ...]:
    """``("baseline", ...)`` -> ``("baseline_cal", ...)``: the bias methods of calibrated networks."""
    return tuple(f"{n}_cal" for n in networks)


def run_calibrated_bias(method: str, profile: Any, sigma: float,
                        n_response: int = N_RESPONSE_STAMPS) -> dict[str, Any]:
    """Raw and response-calibrated m, c of a trained network on the paired shear-test set.

    ``method`` is ``<network>_cal``. The response ``R`` is measured on the first
    ``n_response`` stamps of the shear-test set (whole galaxies), every stamp's estimate
    is calibrated with it and the paired test is run on the calibrated estimates. Errors:
    ``m*_err`` adds the jackknife error of the paired test and the propagated error of
    ``R`` in quadrature (conservative: their positive correlation is ignored);
    ``m*_err_stat`` is the paired test's alone. Written like :func:`compare.run_bias`.
    """
    from .. import compare, paths
    from ..data import load_dataset
    from ..io import write_json
    from ..models import load_trained

    network = method.removesuffix("_cal")
    if not method.endswith("_cal") or network not in compare.NETWORKS:
        raise ValueError(f"calibrated method must be one of {calibrated_network_names(compare.NETWORKS)}, "
                         f"got {method!r}")
    ds = load_dataset("shear", profile)
    images = ds.images(sigma)
    psf, scale = np.asarray(ds.psf), ds.sim.pixel_scale_arcsec
    trained = load_trained(paths.run_dir(network, sigma, profile))
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
    write_json(compare.result_path(profile, method, sigma, kind="bias"), result)
    return result


def moments_response(sets: dict[str, np.ndarray], sim: Any, n_blocks: int = 50) -> ResponseResult:
    """The response of the exact estimator on the same sheared images: a reference.

    PSF-deconvolved adaptive moments (:mod:`shearbridge.moments`, exact for Gaussian
    galaxies and PSFs) told the metacal reconvolution PSF: the pixelised PSF dilated by
    ``1 + 2 delta``. Its response is the shear-addition Jacobian of these galaxies, whose
    mean over a finite sample differs from the identity by the sample's shape fluctuation;
    a network's response on the same images is to be read against it.
    """
    import jax.numpy as jnp

    from ..moments import adaptive_moments

    # the moments add the pixel's 1/12 px^2 themselves; metacal dilates the pixelised PSF
    psf_px = sim.psf_sigma_arcsec / sim.pixel_scale_arcsec
    dilation = Metacal(estimator=None, step=RESPONSE_DELTA).dilation
    dilated = math.sqrt(dilation**2 * (psf_px**2 + 1 / 12) - 1 / 12)
    g = {}
    for t in SHEARED_TYPES:
        out = adaptive_moments(jnp.asarray(sets[t], jnp.float32), dilated, n_iter=8)
        g[t] = np.stack([np.asarray(out["g1"]), np.asarray(out["g2"])], axis=1).astype(np.float64)
    return response_from_estimates(g, RESPONSE_DELTA, n_blocks)


def response_images_path(profile: Any, sigma: float) -> Path:
    """Where :func:`response_images` keeps the sheared images of one profile and noise level."""
    from .. import paths
    from ..config import noise_tag

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
    from ..data import load_dataset
    from ..io import save_npz

    ds = dataset if dataset is not None else load_dataset("shear", profile)
    n = int(min(len(ds), max(4, n_response)) // 4 * 4)
    seed = int(np.random.SeedSequence([profile.seed, 0x5E5, round(-math.log10(sigma) * 100)])
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

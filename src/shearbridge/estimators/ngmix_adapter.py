"""ngmix behind the :class:`~shearbridge.estimators.base.ShapeEstimator` interface.

* :class:`NgmixMLEstimator`: per-galaxy maximum-likelihood (Levenberg-Marquardt)
  fit of the correct galaxy model (``'gauss'`` or ``'exp'``) convolved with a fitted
  PSF, flat prior (plain MLE), several tries: the fair per-galaxy comparison for a
  CNN regressing ``g`` (the paper's comparison section).
* :class:`NgmixMetacalEstimator`: metacalibration (Huff & Mandelbaum 2017; Sheldon &
  Huff 2017), the same fit on the ``noshear, 1p, 1m, 2p, 2m`` images;
  :func:`metacal_response` and :func:`ensemble_shear` calibrate the ensemble.

ngmix (GPL-2.0) is on conda-forge only, not PyPI, so it is no dependency: it is
imported lazily and its absence raises :class:`NgmixUnavailable` (an
``ImportError``) saying how to install it. No ngmix code is copied here.

Conventions (centre and Jacobian, ``T`` and ``size``, weights, seeding) are listed
in :mod:`shearbridge.estimators.ngmix_support`, which also holds the shared base
class; this module re-exports its public names.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from shearbridge.estimators.base import EstimatorResult
from shearbridge.estimators.ngmix_support import (
    GALAXY_MODELS,
    METACAL_PSFS,
    METACAL_TYPES,
    PSF_MODELS,
    NgmixEstimatorBase,
    NgmixUnavailable,
    check_choice,
    import_ngmix,
    ngmix_version,
)

__all__ = [
    "NgmixUnavailable",
    "import_ngmix",
    "ngmix_version",
    "NgmixMLEstimator",
    "NgmixMetacalEstimator",
    "metacal_response",
    "ensemble_shear",
    "GALAXY_MODELS",
    "PSF_MODELS",
    "METACAL_PSFS",
    "METACAL_TYPES",
]


class NgmixMLEstimator(NgmixEstimatorBase):
    """Per-galaxy maximum-likelihood fit with ngmix (flat prior, fitted PSF).

    ``psf_image`` (shared by the batch) is fitted once per ``measure`` call with
    ``ngmix.runners.PSFRunner`` (``psf_model``); its mixture is attached to every
    stamp's observation, which ``ngmix.runners.Runner`` fits with
    ``ngmix.fitting.Fitter(model)`` (Levenberg-Marquardt, retried from a new jittered
    guess up to ``ntry`` times while ngmix flags the fit; this is what
    ``ngmix.bootstrap.Bootstrapper`` does, minus refitting the same PSF per object).
    Free parameters: centre ``(v, u)``, ``g1, g2``, ``T``, flux. No prior: the plain
    MLE. If the PSF fit fails ``psf_ntry`` times, every row is flagged.

    Parameters
    ----------
    model : {'gauss', 'exp'}
        Galaxy model; use the one the stamps were drawn with.
    seed : int
        Seed of the ``SeedSequence`` that spawns the per-object RNGs.
    ntry : int, default 4
        Attempts per galaxy fit.
    psf_ntry : int, default 10
        Attempts for the PSF fit (random guesses; ``'coellip'`` fits need several).
    psf_model : {'coellip3', 'coellip2', 'gauss'}, default 'coellip3'
        PSF mixture: 3 or 2 co-elliptical Gaussians, or one. Systematic g errors
        at noise 1e-5, in units of the Cramer-Rao error (they shrink as 1/noise):
        Gaussian PSF with its pixel: <= 0.2 / 0.2 / 0.4 (size: 0.25 / 0.15 / 0.75);
        Moffat (beta 2.5): <= 0.6 / 10 / 600. Cost per galaxy: about 20 / 14 /
        11 ms. ngmix's EM PSF fitter is not offered (biases of several sigma on
        noise-free PSF images).
    lm_pars : mapping, optional
        ``scipy.optimize.leastsq`` settings (``maxfev``, ``ftol``, ``xtol``);
        ngmix's defaults (4000, 1e-5, 1e-5) when omitted.
    min_s2n : float, optional
        Flag fits whose ngmix ``s2n`` (matched-filter S/N of the model) is below
        this. Default ``None``: no cut, so that estimators are compared on the same
        objects, not on different selections.

    Notes
    -----
    ``size`` is in arcsec (:mod:`~shearbridge.estimators.ngmix_support`). ``flags``:
    ``FLAG_FIT_FAILURE`` for an ngmix flag or exception, flux <= 0 or ``s2n < min_s2n``;
    ``FLAG_NOT_CONVERGED`` when only ``maxfev`` was hit; ``FLAG_AT_BOUND`` for ``|g| > 0.99``
    or ``T <= 0``.
    ``extra`` (per object): ``g_cov`` (N, 2, 2) and ``g_err`` (N, 2), ngmix's LM
    covariance, which ngmix rescales by ``chi2 / dof`` (meaningless on noise-free
    stamps); ``pars_cov_fisher`` (N, 6, 6), the unscaled inverse Fisher matrix
    ``(J^T W J)^-1`` at the fit for the stated ``noise_sigma`` (the Cramer-Rao bound
    at the best fit) in ngmix's order ``(v, u, g1, g2, T, flux)`` (arcsec, arcsec,
    -, -, arcsec^2, flux units) and ``g_err_fisher`` (N, 2); ``T``, ``T_err``
    (arcsec^2), ``flux_err``, ``s2n``, ``chi2per``, ``nfev``, ``offset_arcsec``
    (N, 2) = ``(dx, dy)``, ``psf_T`` (arcsec^2), ``ngmix_flags``; scalars
    ``ngmix_version``, ``model``, ``psf_model``, ``seed``, ``ntry``, ``min_s2n``.
    """

    def __init__(
        self,
        model: str = "gauss",
        *,
        seed: int,
        ntry: int = 4,
        psf_model: str = "coellip3",
        psf_ntry: int = 10,
        lm_pars: Mapping[str, float] | None = None,
        min_s2n: float | None = None,
    ) -> None:
        super().__init__(
            model=model,
            seed=seed,
            ntry=ntry,
            psf_model=psf_model,
            psf_ntry=psf_ntry,
            lm_pars=lm_pars,
            min_s2n=min_s2n,
        )
        self.name = f"ngmix_ml_{model}"

    def measure(
        self,
        stamps: np.ndarray,
        psf_image: np.ndarray,
        pixel_scale_arcsec: float,
        noise_sigma: float,
    ) -> EstimatorResult:
        """Fit every stamp; see :class:`~shearbridge.estimators.base.ShapeEstimator`."""
        stamps, psf = self._prepare(stamps, psf_image, pixel_scale_arcsec, noise_sigma)
        failures = self._failures()
        rngs = self._next_rngs(len(stamps) + 1)
        psf_obs = self._psf_observation(psf, pixel_scale_arcsec)
        try:
            psf_res = self._psf_runner(rngs[-1]).go(psf_obs)  # sets psf_obs.gmix on success
        except failures:
            psf_res = None
        rows = []
        for stamp, rng in zip(stamps, rngs):
            obs = self._observation(stamp, psf_obs, pixel_scale_arcsec, noise_sigma)
            res = None
            if psf_obs.has_gmix():
                try:
                    res = self._runner(rng).go(obs)
                except failures:
                    pass
            rows.append(self._row(res, obs))
        if psf_res is not None and not psf_obs.has_gmix():
            for row in rows:
                row["ngmix_flags"] = int(psf_res["flags"])
        cols = self._stack(rows)
        extra = {
            k: cols[k]
            for k in (
                "g_cov",
                "T",
                "T_err",
                "flux_err",
                "s2n",
                "chi2per",
                "nfev",
                "psf_T",
                "ngmix_flags",
            )
        }
        extra["pars_cov_fisher"] = fisher = cols["pars_cov_fisher"]
        extra["g_err"] = np.sqrt(np.diagonal(cols["g_cov"], axis1=1, axis2=2))
        extra["g_err_fisher"] = np.sqrt(np.diagonal(fisher[:, 2:4, 2:4], axis1=1, axis2=2))
        extra["offset_arcsec"] = cols["offset"]
        extra.update(self._metadata())
        return EstimatorResult(
            g1=cols["g"][:, 0],
            g2=cols["g"][:, 1],
            size=cols["size"],
            flux=cols["flux"],
            flags=cols["flags"],
            extra=extra,
        )


class NgmixMetacalEstimator(NgmixEstimatorBase):
    """Metacalibration with ngmix: the ML fit on the five metacal images of each stamp.

    ``ngmix.metacal.MetacalBootstrapper`` deconvolves the stamp by the PSF image,
    shears it by ``+-step`` in ``g1``, ``g2`` (or not), reconvolves with a slightly
    dilated round PSF and runs the PSF and galaxy fits of :class:`NgmixMLEstimator`.
    ``fixnoise`` (ngmix's default) adds a rotated, sheared noise field cancelling
    the correlated noise of the shearing; it doubles the noise variance.

    Parameters
    ----------
    model, seed, ntry, lm_pars, min_s2n
        As for :class:`NgmixMLEstimator` (``min_s2n`` applies to all five fits).
        The reconvolution PSF of each metacal image is a round Gaussian, fitted
        exactly by one Gaussian (``psf_model='gauss'``, ``psf_ntry`` attempts).
    metacal_psf : {'fitgauss', 'gauss', 'azgauss'}, default 'fitgauss'
        Reconvolution PSF. ``'fitgauss'``: a dilated round Gaussian fitted to the
        PSF image (ngmix documents ``'gauss'`` as not noise robust). All are round,
        so the ``*_psf`` images are not needed.
    step : float, default 0.01
        Metacal shear step.
    fixnoise : bool, default True
        Add ngmix's compensating noise field.

    Notes
    -----
    ``g1, g2, size, flux`` are those of ``noshear`` (uncalibrated); ``flags`` ORs the
    five fits' flags. ``extra``: ``g_<type>`` (N, 2) and ``flags_<type>`` (N,) for
    each of :data:`METACAL_TYPES`; ``R`` (N, 2, 2), ``R[n, i, j] = (g_i(+step e_j) -
    g_i(-step e_j)) / (2 step)``; ``noshear`` ``g_cov``, ``T``, ``s2n``, ``psf_T``;
    scalars ``step``, ``metacal_psf``, ``fixnoise`` and those of the ML estimator.
    For an ML fit of the correct model ``R`` is close to the identity
    (``R11 = 1 - Re g^2`` per object), not a resolution factor.
    """

    def __init__(
        self,
        model: str = "gauss",
        *,
        seed: int,
        metacal_psf: str = "fitgauss",
        step: float = 0.01,
        fixnoise: bool = True,
        ntry: int = 4,
        psf_ntry: int = 4,
        lm_pars: Mapping[str, float] | None = None,
        min_s2n: float | None = None,
    ) -> None:
        super().__init__(
            model=model,
            seed=seed,
            ntry=ntry,
            psf_model="gauss",
            psf_ntry=psf_ntry,
            lm_pars=lm_pars,
            min_s2n=min_s2n,
        )
        check_choice("metacal_psf", metacal_psf, METACAL_PSFS)
        if not (isinstance(step, (float, int)) and 0.0 < step < 0.1):
            raise ValueError(f"step must be a number in (0, 0.1), got {step!r}")
        self.metacal_psf = metacal_psf
        self.step = float(step)
        self.fixnoise = bool(fixnoise)
        self.name = f"ngmix_metacal_{model}"

    def measure(
        self,
        stamps: np.ndarray,
        psf_image: np.ndarray,
        pixel_scale_arcsec: float,
        noise_sigma: float,
    ) -> EstimatorResult:
        """Run metacal on every stamp; see :class:`~shearbridge.estimators.base.ShapeEstimator`."""
        stamps, psf = self._prepare(stamps, psf_image, pixel_scale_arcsec, noise_sigma)
        ngmix = self._ngmix
        failures = self._failures()
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in METACAL_TYPES}
        for stamp, rng in zip(stamps, self._next_rngs(len(stamps))):
            psf_obs = self._psf_observation(psf, pixel_scale_arcsec)  # metacal may modify it
            obs = self._observation(stamp, psf_obs, pixel_scale_arcsec, noise_sigma)
            boot = ngmix.metacal.MetacalBootstrapper(
                runner=self._runner(rng),
                psf_runner=self._psf_runner(rng),
                rng=rng,
                psf=self.metacal_psf,
                step=self.step,
                fixnoise=self.fixnoise,
                types=list(METACAL_TYPES),
            )
            try:
                resdict, obsdict = boot.go(obs)
            except failures:
                resdict, obsdict = {}, {}
            for t in METACAL_TYPES:
                rows[t].append(self._row(resdict.get(t), obsdict.get(t)))
        cols = {t: self._stack(rows[t]) for t in METACAL_TYPES}
        flags = np.bitwise_or.reduce([cols[t]["flags"] for t in METACAL_TYPES], axis=0)
        g = {t: cols[t]["g"] for t in METACAL_TYPES}
        R = np.stack(
            [(g["1p"] - g["1m"]) / (2 * self.step), (g["2p"] - g["2m"]) / (2 * self.step)],
            axis=-1,
        )  # R[n, i, j] = d g_i / d shear_j
        ns = cols["noshear"]
        extra: dict[str, Any] = {f"g_{t}": g[t] for t in METACAL_TYPES}
        extra.update({f"flags_{t}": cols[t]["flags"] for t in METACAL_TYPES})
        extra.update(R=R, g_cov=ns["g_cov"], T=ns["T"], s2n=ns["s2n"], psf_T=ns["psf_T"])
        extra.update(self._metadata())
        extra.update(step=self.step, metacal_psf=self.metacal_psf, fixnoise=self.fixnoise)
        return EstimatorResult(
            g1=ns["g"][:, 0],
            g2=ns["g"][:, 1],
            size=ns["size"],
            flux=ns["flux"],
            flags=flags,
            extra=extra,
        )


# ------------------------------------------------------------------- ensemble shear


def _metacal_arrays(result: EstimatorResult, mask: np.ndarray | None) -> tuple[Any, Any]:
    if "R" not in result.extra or "g_noshear" not in result.extra:
        raise ValueError("result has no metacal data (extra['R']); use NgmixMetacalEstimator")
    keep = result.ok if mask is None else (np.asarray(mask, dtype=bool) & result.ok)
    if keep.sum() < 2:
        raise ValueError(f"need at least 2 unflagged objects, got {int(keep.sum())}")
    return np.asarray(result.extra["R"])[keep], np.asarray(result.extra["g_noshear"])[keep]


def metacal_response(result: EstimatorResult, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean metacal shear response ``R`` (2, 2) of the unflagged objects.

    ``R[i, j] = < (g_i(+step along j) - g_i(-step along j)) / (2 step) >`` over the
    objects with ``flags == 0`` (and ``mask``, if given), so that for a small
    constant shear ``<g_noshear> ~= R @ shear``.
    """
    R, _ = _metacal_arrays(result, mask)
    return R.mean(axis=0)


def ensemble_shear(
    result: EstimatorResult, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated mean shear ``R^-1 <g_noshear>`` and its 1-sigma error, each shape (2,).

    The error propagates the standard error of the mean of ``g_noshear`` through
    ``R^-1``; the scatter of ``R`` itself (a second-order term) is ignored.
    """
    R_all, g = _metacal_arrays(result, mask)
    Rinv = np.linalg.inv(R_all.mean(axis=0))
    shear = Rinv @ g.mean(axis=0)
    cov_mean = np.cov(g, rowvar=False) / g.shape[0]
    err = np.sqrt(np.diag(Rinv @ cov_mean @ Rinv.T))
    return shear, err

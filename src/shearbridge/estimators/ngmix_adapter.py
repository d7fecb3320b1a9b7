"""ngmix behind the :class:`~shearbridge.estimators.base.ShapeEstimator` interface.

* :class:`NgmixMLEstimator`: per-galaxy maximum-likelihood (Levenberg-Marquardt)
  fit of the correct galaxy model (``'gauss'`` or ``'exp'``) convolved with a fitted
  PSF, flat prior (plain MLE), several tries: the fair per-galaxy comparison for a
  CNN regressing ``g`` (RESEARCH.md section 4).
* :class:`NgmixMetacalEstimator`: metacalibration (Huff & Mandelbaum 2017; Sheldon &
  Huff 2017), the same fit on the ``noshear, 1p, 1m, 2p, 2m`` images;
  :func:`metacal_response` and :func:`ensemble_shear` calibrate the ensemble.

ngmix (GPL-2.0) is on conda-forge only, not PyPI, so it is no dependency: it is
imported lazily and its absence raises :class:`NgmixUnavailable` (an
``ImportError``) saying how to install it. No ngmix code is copied here.

Conventions (checked in ``tests/test_ngmix_adapter.py``)
-------------------------------------------------------
* ``ngmix.DiagonalJacobian(scale=pixel_scale_arcsec, row=c, col=c)``,
  ``c = (S - 1) / 2``: the true centre where GalSim's ``drawImage`` puts a centred
  profile (``(26, 26)``, 0-indexed, for ``S = 53``). ngmix's ``u`` runs along
  columns (GalSim ``x``), ``v`` along rows (``y``), and its ``g`` is the reduced
  shear of ``galsim.GSObject.shear(g1=, g2=)``, signs included. Fitted centres are
  returned as ``extra['offset_arcsec'] = (dx, dy) = (u, v)`` (arcsec).
* ``T = <x^2 + y^2>`` (arcsec^2) of the pre-PSF model; a shear keeps the area, so
  ``T_round = T (1 - g^2) / (1 + g^2)``. ``size`` (arcsec) follows the label
  convention of :class:`shearbridge.config.SimConfig`: the round model's
  half-light radius over ``sqrt(2 ln 2)``, i.e. the ``sigma`` of ``galsim.Gaussian``
  before shearing for ``'gauss'`` (``T_round = 2 sigma^2``).
* White noise: ``weight = 1 / noise_sigma**2``. The PSF image is normalised to unit
  sum with a uniform weight (it only scales the unused PSF-fit errors).
* Each estimator owns ``numpy.random.SeedSequence(seed)`` and spawns one child per
  object (and one per batch PSF fit), in call order, seeding the
  ``numpy.random.RandomState`` (the type ngmix documents) for that object's guesses
  and metacal noise field: results are reproducible given the seed and the
  sequence of ``measure`` calls.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .base import (FLAG_AT_BOUND, FLAG_FIT_FAILURE, FLAG_NONFINITE, FLAG_NOT_CONVERGED,
                   EstimatorInputError, EstimatorResult, validate_inputs)

__all__ = [
    "NgmixUnavailable", "import_ngmix", "ngmix_version", "NgmixMLEstimator",
    "NgmixMetacalEstimator", "metacal_response", "ensemble_shear", "GALAXY_MODELS",
    "PSF_MODELS", "METACAL_PSFS", "METACAL_TYPES",
]

GALAXY_MODELS = ("gauss", "exp")
PSF_MODELS = ("gauss", "coellip2", "coellip3")
#: Reconvolution PSFs accepted by ``ngmix.metacal.get_all_metacal`` that give a round
#: PSF (so the ``*_psf`` images are not needed).
METACAL_PSFS = ("fitgauss", "gauss", "azgauss")
METACAL_TYPES = ("noshear", "1p", "1m", "2p", "2m")

_INSTALL_HINT = (
    "ngmix is not installed. It is distributed on conda-forge only (not on PyPI) and is "
    "GPL-2.0, so shearbridge does not depend on it. Install it with "
    "`conda install -c conda-forge ngmix`, or from source: "
    "`pip install --no-deps git+https://github.com/esheldon/ngmix` "
    "(it needs numpy, scipy, numba and galsim)."
)
#: Bit set by ngmix's LM wrapper when scipy's leastsq stops at ``maxfev`` (ier == 5).
_NGMIX_LM_MAXFEV = 1
#: |g| above which a fit is flagged as at the edge of the allowed shape space.
_G_EDGE = 0.99


class NgmixUnavailable(ImportError):
    """ngmix cannot be imported (it is conda-forge only); the message says how to install it."""


def import_ngmix() -> Any:
    """Import and return the ``ngmix`` module, or raise :class:`NgmixUnavailable`."""
    try:
        import ngmix  # noqa: PLC0415 (lazy on purpose: optional, GPL, conda-only)
        import ngmix.metacal  # noqa: F401, PLC0415
    except ImportError as err:
        raise NgmixUnavailable(_INSTALL_HINT) from err
    return ngmix


def ngmix_version() -> str:
    """The installed ngmix version string (raises :class:`NgmixUnavailable` if absent)."""
    return str(import_ngmix().__version__)


# ----------------------------------------------------------------------------- helpers


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _r50_per_sqrt_T(ngmix: Any, model: str) -> float:
    """Half-light radius of ngmix's round ``model`` mixture with ``T = 1`` (same units)."""
    from scipy.optimize import brentq  # noqa: PLC0415

    data = ngmix.GMixModel([0.0, 0.0, 0.0, 0.0, 1.0, 1.0], model).get_data()
    p = np.asarray(data["p"], dtype=float)
    var = np.asarray(data["irr"], dtype=float)  # per-axis variance of each component

    def enclosed(r: float) -> float:
        return float(np.sum(p * -np.expm1(-0.5 * r * r / var)) / p.sum()) - 0.5

    return float(brentq(enclosed, 1e-6, 100.0, xtol=1e-12))


class _MomentTGuesser:
    """An ngmix guesser (``guesser(obs=obs)`` -> parameter array) seeded by moments.

    ``T`` comes from adaptive moments of the PSF-convolved image minus the PSF fit's
    ``T`` (exact for Gaussians), clipped to ``[T_psf / 10, 100 T_psf]``; the centre
    from the same moments; the flux from ngmix's PSF-flux template fit
    (``ngmix.guessers.TPSFFluxGuesser``, which also jitters every parameter). If the
    moments fail, the guess falls back to ``T = T_psf`` at the stamp centre.
    """

    def __init__(self, ngmix: Any, rng: np.random.RandomState) -> None:
        self._ngmix = ngmix
        self._rng = rng
        self._cache: tuple[Any, Any, np.ndarray] | None = None  # (obs, guesser, centre)

    def _setup(self, obs: Any) -> tuple[Any, np.ndarray]:
        ngmix = self._ngmix
        T_psf = float(obs.psf.gmix.get_T()) if obs.psf.has_gmix() else 2.0 * obs.jacobian.scale**2
        T_gal, cen = T_psf, np.zeros(2)
        try:
            am = ngmix.admom.run_admom(obs, guess=2.0 * T_psf, rng=self._rng)
            if am["flags"] == 0 and np.isfinite(am["T"]):
                T_gal = float(np.clip(am["T"] - T_psf, 0.1 * T_psf, 100.0 * T_psf))
                cen = np.asarray(am["pars"][0:2], dtype=float)
        except ngmix.gexceptions.NGmixBaseException:
            pass
        guesser = ngmix.guessers.TPSFFluxGuesser(rng=self._rng, T=T_gal)
        return guesser, cen

    def __call__(self, obs: Any, nrand: int = 1) -> np.ndarray:
        if self._cache is None or self._cache[0] is not obs:  # retries reuse the moments
            self._cache = (obs, *self._setup(obs))
        _, guesser, cen = self._cache
        guess = guesser(obs=obs, nrand=nrand)
        guess[..., 0:2] += cen  # TPSFFluxGuesser jitters the centre around 0 by +-0.01"
        return guess


class _NgmixEstimatorBase:
    """Shared set-up: validation, observations, PSF runner, object runner, result rows."""

    def __init__(self, *, model: str, seed: int, ntry: int, psf_model: str, psf_ntry: int,
                 lm_pars: Mapping[str, float] | None, min_s2n: float | None) -> None:
        _check_choice("model", model, GALAXY_MODELS)
        if min_s2n is not None and not (np.isfinite(min_s2n) and min_s2n >= 0):
            raise ValueError(f"min_s2n must be None or a number >= 0, got {min_s2n!r}")
        _check_choice("psf_model", psf_model, PSF_MODELS)
        _check_int("seed", seed, 0)
        _check_int("ntry", ntry, 1)
        _check_int("psf_ntry", psf_ntry, 1)
        self.model = model
        self.psf_model = psf_model
        self.seed = int(seed)
        self.ntry = int(ntry)
        self.psf_ntry = int(psf_ntry)
        self.lm_pars = dict(lm_pars) if lm_pars is not None else None
        self.min_s2n = None if min_s2n is None else float(min_s2n)
        self._seed_seq = np.random.SeedSequence(self.seed)
        self._ngmix: Any = None
        self._size_factor = math.nan

    # -- ngmix objects -------------------------------------------------------------
    def _load(self) -> Any:
        if self._ngmix is None:
            ngmix = import_ngmix()
            self._size_factor = _r50_per_sqrt_T(ngmix, self.model) / math.sqrt(2 * math.log(2))
            self._ngmix = ngmix
        return self._ngmix

    def _next_rngs(self, n: int) -> list[np.random.RandomState]:
        return [np.random.RandomState(np.random.MT19937(c)) for c in self._seed_seq.spawn(n)]

    def _psf_runner(self, rng: np.random.RandomState) -> Any:
        ngmix = self._ngmix
        if self.psf_model == "gauss":
            fitter = ngmix.fitting.Fitter(model="gauss", fit_pars=self.lm_pars)
            guesser = ngmix.guessers.SimplePSFGuesser(rng=rng)
        else:  # "coellipN": N co-elliptical Gaussians
            ngauss = int(self.psf_model.removeprefix("coellip"))
            fitter = ngmix.fitting.CoellipFitter(ngauss=ngauss, fit_pars=self.lm_pars)
            guesser = ngmix.guessers.CoellipPSFGuesser(rng=rng, ngauss=ngauss)
        return ngmix.runners.PSFRunner(fitter=fitter, guesser=guesser, ntry=self.psf_ntry)

    def _runner(self, rng: np.random.RandomState) -> Any:
        ngmix = self._ngmix
        fitter = ngmix.fitting.Fitter(model=self.model, fit_pars=self.lm_pars)
        return ngmix.runners.Runner(
            fitter=fitter, guesser=_MomentTGuesser(ngmix, rng), ntry=self.ntry
        )

    def _jacobian(self, size: int, scale: float) -> Any:
        cen = (size - 1) / 2.0
        return self._ngmix.DiagonalJacobian(scale=scale, row=cen, col=cen)

    def _psf_observation(self, psf: np.ndarray, scale: float) -> Any:
        weight = np.full(psf.shape, (5e4 / psf.max()) ** 2)  # ngmix metacal's PSF weight
        return self._ngmix.Observation(psf, weight=weight,
                                       jacobian=self._jacobian(psf.shape[0], scale))

    def _observation(self, stamp: np.ndarray, psf_obs: Any, scale: float,
                     noise_sigma: float) -> Any:
        weight = np.full(stamp.shape, 1.0 / noise_sigma**2)
        return self._ngmix.Observation(stamp, weight=weight, psf=psf_obs,
                                       jacobian=self._jacobian(stamp.shape[0], scale))

    def _failures(self) -> tuple[type[BaseException], ...]:
        import galsim  # noqa: PLC0415 (ngmix.metacal needs it; only reached with ngmix)

        return (self._ngmix.gexceptions.NGmixBaseException, galsim.errors.GalSimError,
                ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError)

    def _prepare(
        self, stamps: Any, psf_image: Any, pixel_scale_arcsec: float, noise_sigma: float
    ) -> tuple[np.ndarray, np.ndarray]:
        stamps, psf = validate_inputs(stamps, psf_image, pixel_scale_arcsec, noise_sigma)
        if stamps.shape[1] < 5:
            raise EstimatorInputError(f"stamps of {stamps.shape[1]} px are too small for ngmix")
        self._load()
        return stamps, psf / psf.sum()

    # -- one fit result -> one row -------------------------------------------------
    def _row(self, res: Any, obs: Any) -> dict[str, Any]:
        """Convert an ngmix fit result (or ``None`` after an exception) to one output row."""
        row: dict[str, Any] = {
            "g": np.full(2, np.nan), "g_cov": np.full((2, 2), np.nan),
            "pars_cov_fisher": np.full((6, 6), np.nan), "T": np.nan,
            "T_err": np.nan, "flux": np.nan, "flux_err": np.nan, "s2n": np.nan,
            "chi2per": np.nan, "nfev": -1, "offset": np.full(2, np.nan), "size": np.nan,
            "psf_T": np.nan, "ngmix_flags": -1, "flags": FLAG_FIT_FAILURE,
        }
        if obs is not None and obs.psf.has_gmix():
            row["psf_T"] = float(obs.psf.gmix.get_T())
        if res is None:
            return row
        row["ngmix_flags"] = nflags = int(res["flags"])
        row["nfev"] = int(res.get("nfev", -1))
        if nflags != 0:
            row["flags"] = FLAG_NOT_CONVERGED if nflags == _NGMIX_LM_MAXFEV else FLAG_FIT_FAILURE
            return row
        pars = np.asarray(res["pars"], dtype=float)
        g = np.asarray(res["g"], dtype=float)
        row.update(
            g=g, g_cov=np.asarray(res["g_cov"], dtype=float), T=float(res["T"]),
            T_err=float(res["T_err"]), flux=float(res["flux"]),
            flux_err=float(res["flux_err"]), s2n=float(res["s2n"]),
            chi2per=float(res["chi2per"]), offset=pars[[1, 0]],
        )
        if res.get("pars_cov0") is not None:
            row["pars_cov_fisher"] = np.asarray(res["pars_cov0"], dtype=float)
        flags = 0
        if not row["flux"] > 0 or (self.min_s2n is not None and not row["s2n"] >= self.min_s2n):
            flags |= FLAG_FIT_FAILURE
        gsq = float(g @ g)
        T_round = row["T"] * (1.0 - gsq) / (1.0 + gsq)
        if T_round > 0:
            row["size"] = self._size_factor * math.sqrt(T_round)
        if math.sqrt(gsq) > _G_EDGE or not T_round > 0:
            flags |= FLAG_AT_BOUND
        if not (np.all(np.isfinite(g)) and np.isfinite(row["flux"])):
            flags |= FLAG_NONFINITE
        row["flags"] = flags
        return row

    @staticmethod
    def _stack(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        return {k: np.array([r[k] for r in rows]) for k in rows[0]}

    def _metadata(self) -> dict[str, Any]:
        return {
            "ngmix_version": str(self._ngmix.__version__), "model": self.model,
            "psf_model": self.psf_model, "seed": self.seed, "ntry": self.ntry,
            "min_s2n": self.min_s2n,
        }


class NgmixMLEstimator(_NgmixEstimatorBase):
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
    ``size`` is in arcsec (module docstring). ``flags``: ``FLAG_FIT_FAILURE`` for an
    ngmix flag or exception, flux <= 0 or ``s2n < min_s2n``; ``FLAG_NOT_CONVERGED``
    when only ``maxfev`` was hit; ``FLAG_AT_BOUND`` for ``|g| > 0.99`` or ``T <= 0``.
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
        super().__init__(model=model, seed=seed, ntry=ntry, psf_model=psf_model,
                         psf_ntry=psf_ntry, lm_pars=lm_pars, min_s2n=min_s2n)
        self.name = f"ngmix_ml_{model}"

    def measure(self, stamps: np.ndarray, psf_image: np.ndarray, pixel_scale_arcsec: float,
                noise_sigma: float) -> EstimatorResult:
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
        extra = {k: cols[k] for k in ("g_cov", "T", "T_err", "flux_err", "s2n", "chi2per",
                                      "nfev", "psf_T", "ngmix_flags")}
        extra["pars_cov_fisher"] = fisher = cols["pars_cov_fisher"]
        extra["g_err"] = np.sqrt(np.diagonal(cols["g_cov"], axis1=1, axis2=2))
        extra["g_err_fisher"] = np.sqrt(np.diagonal(fisher[:, 2:4, 2:4], axis1=1, axis2=2))
        extra["offset_arcsec"] = cols["offset"]
        extra.update(self._metadata())
        return EstimatorResult(
            g1=cols["g"][:, 0], g2=cols["g"][:, 1], size=cols["size"], flux=cols["flux"],
            flags=cols["flags"], extra=extra,
        )


class NgmixMetacalEstimator(_NgmixEstimatorBase):
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
        super().__init__(model=model, seed=seed, ntry=ntry, psf_model="gauss",
                         psf_ntry=psf_ntry, lm_pars=lm_pars, min_s2n=min_s2n)
        _check_choice("metacal_psf", metacal_psf, METACAL_PSFS)
        if not (isinstance(step, (float, int)) and 0.0 < step < 0.1):
            raise ValueError(f"step must be a number in (0, 0.1), got {step!r}")
        self.metacal_psf = metacal_psf
        self.step = float(step)
        self.fixnoise = bool(fixnoise)
        self.name = f"ngmix_metacal_{model}"

    def measure(self, stamps: np.ndarray, psf_image: np.ndarray, pixel_scale_arcsec: float,
                noise_sigma: float) -> EstimatorResult:
        """Run metacal on every stamp; see :class:`~shearbridge.estimators.base.ShapeEstimator`."""
        stamps, psf = self._prepare(stamps, psf_image, pixel_scale_arcsec, noise_sigma)
        ngmix = self._ngmix
        failures = self._failures()
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in METACAL_TYPES}
        for stamp, rng in zip(stamps, self._next_rngs(len(stamps))):
            psf_obs = self._psf_observation(psf, pixel_scale_arcsec)  # metacal may modify it
            obs = self._observation(stamp, psf_obs, pixel_scale_arcsec, noise_sigma)
            boot = ngmix.metacal.MetacalBootstrapper(
                runner=self._runner(rng), psf_runner=self._psf_runner(rng), rng=rng,
                psf=self.metacal_psf, step=self.step, fixnoise=self.fixnoise,
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
            g1=ns["g"][:, 0], g2=ns["g"][:, 1], size=ns["size"], flux=ns["flux"],
            flags=flags, extra=extra,
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

"""ngmix plumbing shared by the estimators of :mod:`shearbridge.estimators.ngmix_adapter`.

The optional import (:func:`import_ngmix`, :class:`NgmixUnavailable`), the accepted
models, argument checks, the moment-based starting guess, and
:class:`NgmixEstimatorBase`: arrays -> ``ngmix.Observation`` conversion, the PSF and
galaxy runners, per-object seeding and ngmix fit result -> output row conversion.
ngmix itself is only imported when a fit runs.

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

from shearbridge.estimators.base import (
    FLAG_AT_BOUND,
    FLAG_FIT_FAILURE,
    FLAG_NONFINITE,
    FLAG_NOT_CONVERGED,
    EstimatorInputError,
    validate_inputs,
)

__all__ = [
    "NgmixUnavailable",
    "import_ngmix",
    "ngmix_version",
    "NgmixEstimatorBase",
    "check_choice",
    "check_int",
    "GALAXY_MODELS",
    "PSF_MODELS",
    "METACAL_PSFS",
    "METACAL_TYPES",
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


from shearbridge.errors import NgmixUnavailable  # noqa: E402  (re-exported)


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


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_int(name: str, value: int, minimum: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) >= ``minimum``."""
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


class NgmixEstimatorBase:
    """Shared set-up: validation, observations, PSF runner, object runner, result rows."""

    def __init__(
        self,
        *,
        model: str,
        seed: int,
        ntry: int,
        psf_model: str,
        psf_ntry: int,
        lm_pars: Mapping[str, float] | None,
        min_s2n: float | None,
    ) -> None:
        check_choice("model", model, GALAXY_MODELS)
        if min_s2n is not None and not (np.isfinite(min_s2n) and min_s2n >= 0):
            raise ValueError(f"min_s2n must be None or a number >= 0, got {min_s2n!r}")
        check_choice("psf_model", psf_model, PSF_MODELS)
        check_int("seed", seed, 0)
        check_int("ntry", ntry, 1)
        check_int("psf_ntry", psf_ntry, 1)
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
        return self._ngmix.Observation(
            psf, weight=weight, jacobian=self._jacobian(psf.shape[0], scale)
        )

    def _observation(
        self, stamp: np.ndarray, psf_obs: Any, scale: float, noise_sigma: float
    ) -> Any:
        weight = np.full(stamp.shape, 1.0 / noise_sigma**2)
        return self._ngmix.Observation(
            stamp, weight=weight, psf=psf_obs, jacobian=self._jacobian(stamp.shape[0], scale)
        )

    def _failures(self) -> tuple[type[BaseException], ...]:
        import galsim  # noqa: PLC0415 (ngmix.metacal needs it; only reached with ngmix)

        return (
            self._ngmix.gexceptions.NGmixBaseException,
            galsim.errors.GalSimError,
            ZeroDivisionError,
            FloatingPointError,
            np.linalg.LinAlgError,
        )

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
            "g": np.full(2, np.nan),
            "g_cov": np.full((2, 2), np.nan),
            "pars_cov_fisher": np.full((6, 6), np.nan),
            "T": np.nan,
            "T_err": np.nan,
            "flux": np.nan,
            "flux_err": np.nan,
            "s2n": np.nan,
            "chi2per": np.nan,
            "nfev": -1,
            "offset": np.full(2, np.nan),
            "size": np.nan,
            "psf_T": np.nan,
            "ngmix_flags": -1,
            "flags": FLAG_FIT_FAILURE,
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
            g=g,
            g_cov=np.asarray(res["g_cov"], dtype=float),
            T=float(res["T"]),
            T_err=float(res["T_err"]),
            flux=float(res["flux"]),
            flux_err=float(res["flux_err"]),
            s2n=float(res["s2n"]),
            chi2per=float(res["chi2per"]),
            offset=pars[[1, 0]],
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
            "ngmix_version": str(self._ngmix.__version__),
            "model": self.model,
            "psf_model": self.psf_model,
            "seed": self.seed,
            "ntry": self.ntry,
            "min_s2n": self.min_s2n,
        }

"""A JAX maximum-likelihood shape fitter (the estimator family of an ngmix ML fit).

Model: an elliptical Gaussian (``"gauss"``) or exponential (``"exp"``) galaxy with
parameters ``(flux, x0, y0, size, g1, g2)`` (see :mod:`.render` for units), convolved
with the PSF image given to :meth:`MLFitEstimator.measure` (which contains the pixel
response) and compared with the stamp under white Gaussian noise:
``chi2 = sum_pixels (model - data)^2 / noise_sigma^2``.

Fitted parameters ``p = (flux, x0, y0, log size, eta1, eta2)`` with the conformal
shear ``eta``: ``g = tanh(|eta| / 2) eta / |eta|``, so ``|g| < 1`` always holds.

Optimiser: damped Newton (Levenberg-Marquardt) run to convergence (``jit``, ``vmap`` over
the batch, pure JAX, so it runs unchanged on a GPU; deterministic). Every evaluation uses
the exact Jacobian of the ``S x S`` stamp from :func:`.render.model_and_jacobian` (seven
inverse FFTs per galaxy and evaluation), so ``J^T J`` and ``J^T r`` are exact; the step uses
the exact Hessian of chi2 (``J^T J`` plus the residual curvature ``sum r d2m/dp2``, computed
on the frequency grid without further FFTs, see :func:`_residual_curvature`) where it is
positive definite, the Gauss-Newton ``J^T J`` otherwise, damped by ``lambda diag``
(``lambda`` x0.1 after a step that lowers chi2, x10 and the step rejected otherwise). At
survey S/N the residual is noise, not zero, and Gauss-Newton alone converges only linearly
(slowly for small, poorly resolved galaxies): the old fixed 6 iterations left 11 % (noise
1e-2, median matched-filter S/N 21) and 41 % (2e-2, S/N 11) of the shear-test galaxies
flagged unconverged. Each galaxy is iterated in a ``lax.while_loop`` until the convergence
criterion below holds, after at least ``n_iter`` = 6 steps (noise-free stamps agree with the
old code to 2e-13 in g; at noise 1e-3 the median |dg| is 3e-10 and the largest 2e-5, within
``tol`` standard errors: the old code stopped one step short of the same minimum),
or ``max_iter`` = 50 steps, or the damping reaches its cap, or the fit is pinned at a bound
(log size or |eta| clamped and the step moves nothing by ``tol`` standard errors). A start
that does not end converged inside the bounds is followed by up to ``n_restart`` = 2
deterministic restarts (round shape at the guessed size, then at twice the size, damping
1); the lowest chi2 of the finished starts is kept (a converged, interior one within
``tol^2`` of it is preferred: the same minimum). The convergence criterion and ``tol`` are
unchanged. Under ``vmap`` a batch costs the largest per-galaxy step count, so at low S/N
a batch with a galaxy at a bound runs ~3 x 50 steps instead of 6; the second pass therefore
fits one galaxy per compiled call by default (``refit_batch_size``; 7x faster at S/N 11).

Measured (``MLFitEstimator(model="gauss")``, 1,024 shear-test stamps = 64 ShearNet
galaxies x 16, and 384 exponential (x) Moffat population galaxies fitted with the gauss
model, each with its own PSF; fractions flagged, old fixed 6 iterations -> now):
* noise 1e-3 (S/N ~ 200): shear 0/1,024 -> 0/1,024; population 48/384 (12.5 %, all
  unconverged) -> 0/384.
* noise 1e-2 (S/N 21 / 17): shear 114/1,024 (11.1 %; 112 unconverged) -> 18 (1.8 %);
  population 188/384 (49 %) -> 26 (6.8 %).
* noise 2e-2 (S/N 11): shear 425/1,024 (41.5 %; 424 unconverged) -> 54/256 (21 %, first
  256 stamps).

Every galaxy still flagged has ``FLAG_FIT_FAILURE`` (sigma_g > 1: the shape is not determined,
size -> 0 at |g| -> 1); most also carry ``FLAG_AT_BOUND`` and ``FLAG_NOT_CONVERGED`` (pinned at
the bound, where the unclamped step stays large). No galaxy with a determined shape was left
unconverged. Cost: ~3x per step (the residual curvature), and at low S/N a batch runs to the
step count of its slowest galaxy (one core, batch 256, noise 1e-3: 90 -> 32 stamps/s CPU
time).

The starting point comes from adaptive Gaussian-weighted moments minus the PSF
moments; with ``n_try > 1`` further starts are drawn around it from a seeded
``jax.random`` key and the lowest chi2 is kept.

Flags (see :mod:`.base`): ``FLAG_NOT_CONVERGED`` if the last Gauss-Newton step is
larger than ``tol`` times the parameter's statistical error in any parameter;
``FLAG_AT_BOUND`` if ``|g| > g_max`` or ``size < size_min_arcsec``;
``FLAG_NONFINITE`` for NaN/inf output; ``FLAG_FIT_FAILURE`` for a degenerate fit
(flux <= 0, or a shape error sigma_g > 1, i.e. g undetermined -- e.g. a blank
stamp). ``extra`` holds ``chi2``, ``sigma_g1``, ``sigma_g2`` (square roots of
the diagonal of the inverse Fisher matrix at the fit, i.e. the Cramer-Rao bound
evaluated at the estimate), ``x0``, ``y0`` (arcsec, from the stamp centre) and
``rel_step`` (the last Gauss-Newton step in units of the errors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.estimators.base import (
    FLAG_AT_BOUND,
    FLAG_FIT_FAILURE,
    FLAG_NONFINITE,
    FLAG_NOT_CONVERGED,
    EstimatorInputError,
    EstimatorResult,
    check_psf_image,
    validate_inputs,
)
from shearbridge.estimators.mlfit_solver import JAC_DTYPES, eta_to_g, fit_batch, g_to_eta
from shearbridge.estimators.render import MODELS, FourierGrid, Renderer

__all__ = ["MLFitEstimator", "eta_to_g", "g_to_eta"]


@dataclass
class MLFitEstimator:
    """Maximum-likelihood fit of an elliptical galaxy model, in JAX.

    Parameters
    ----------
    model : {"gauss", "exp"}
        Galaxy profile (``size`` is the pre-shear Gaussian sigma in arcsec; for
        ``exp`` the half-light radius is ``size * sqrt(2 ln 2)``).
    n_iter : int
        Minimum damped Newton steps per start before the convergence test (the old
        fixed count; galaxies that converge within it are fitted exactly as before).
    max_iter : int
        Cap on the steps of one start; a start that has not met the criterion by then
        (or whose damping reaches its cap: no step lowers chi2) is finished unconverged.
    n_restart : int
        Deterministic extra starts (module docstring) tried, one after another, only
        for a galaxy whose previous start did not end converged inside the bounds.
    n_try : int
        Starting points per galaxy; > 1 needs ``seed``.
    seed : int or None
        Seed of the ``jax.random`` key for the extra starts.
    tol : float
        Convergence: last Gauss-Newton step below ``tol`` standard deviations in
        every parameter.
    g_max : float
        ``|g|`` above this is flagged ``FLAG_AT_BOUND``.
    size_min_arcsec : float
        Sizes below this are flagged ``FLAG_AT_BOUND``.
    batch_size : int
        Galaxies per compiled call of the first pass (the last batch is padded, so one
        compilation).
    refit_batch_size : int
        Galaxies per compiled call of the second pass (to convergence). Under ``vmap`` a
        batch runs to the step count of its slowest galaxy, and at low S/N the slowest is a
        hopeless one (3 starts x ``max_iter`` steps), so on a CPU one galaxy per call is
        fastest: 256 shear-test stamps at noise 2e-2 (128 refitted) took 42.7 s with the
        refits in batches of 128 and 6.2 s one by one (one core, compiled; galaxies with a
        determined shape agree to 1.3e-7 in g, i.e. within ``tol``; an unflagged result
        never depended on its batch-mates beyond that). On a GPU raise it.
    n_pad : int or None
        FFT grid side in pixels (default: power of two >= 2 S; see :mod:`.render`).
    lm_lambda0 : float
        Initial Levenberg-Marquardt damping.
    try_jitter : float
        Standard deviation of the extra starts around the moments guess (relative
        in flux; arcsec in x0, y0; in log size; in eta).
    jacobian_precision : {"float32", "float64"}
        Precision of the six derivative images (the model, residual and chi2 are
        always float64, so the fixed point is unaffected; float32 made the whole fit
        ~15% faster on CPU and perturbs ``J^T J`` by ~1e-7 relative).
    """

    #: ``measure`` takes one PSF image per stamp (N, S, S) as well as one for all.
    psf_per_stamp: ClassVar[bool] = True
    model: str = "gauss"
    n_iter: int = 6
    max_iter: int = 50
    n_restart: int = 2
    n_try: int = 1
    seed: int | None = None
    tol: float = 1e-3
    g_max: float = 0.99
    size_min_arcsec: float = 1e-3
    batch_size: int = 256
    refit_batch_size: int = 1
    n_pad: int | None = None
    lm_lambda0: float = 1e-3
    try_jitter: float = 0.1
    jacobian_precision: str = "float32"
    name: str = "mlfit"
    #: Called with the number of stamps just fitted (a pipeline step's progress bar);
    #: no effect on results.
    progress: Callable[[int], Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if min(self.n_iter, self.n_try, self.batch_size, self.refit_batch_size) < 1:
            raise ValueError("n_iter, n_try, batch_size and refit_batch_size must be >= 1")
        if self.max_iter < self.n_iter or self.n_restart < 0:
            raise ValueError("max_iter must be >= n_iter and n_restart >= 0")
        if self.jacobian_precision not in JAC_DTYPES:
            raise ValueError(
                f"jacobian_precision must be one of {sorted(JAC_DTYPES)}, "
                f"got {self.jacobian_precision!r}"
            )
        if self.n_try > 1 and self.seed is None:
            raise ValueError("n_try > 1 needs an explicit seed for the extra starting points")
        if self.name == "mlfit":
            self.name = f"mlfit_{self.model}"

    def _interior(self, theta: np.ndarray) -> np.ndarray:
        """Finite fits inside the ``FLAG_AT_BOUND`` limits."""
        return (
            np.all(np.isfinite(theta), axis=1)
            & (np.hypot(theta[:, 4], theta[:, 5]) <= self.g_max)
            & (theta[:, 3] >= self.size_min_arcsec)
        )

    def _pass(
        self,
        stamps: np.ndarray,
        rows: np.ndarray,
        bs: int,
        key: Any,
        args: Callable[[np.ndarray], tuple],
        last: bool,
        per_stamp: bool,
    ) -> list[np.ndarray]:
        """Fit ``stamps[rows]`` in batches: the first pass (``last`` False) ``n_iter``
        Gauss-Newton steps from the moments guess; the second (True) damped Newton to
        convergence with restarts. Batches are padded to ``bs`` (pass 1) or to a power of two
        (pass 2, ``bs`` = ``refit_batch_size``): a few compilations per batch size. Progress
        counts pass 1 only."""
        outs = []
        for lo in range(0, rows.size, bs):
            idx = rows[lo : lo + bs]
            m = idx.size
            size = bs if not last else min(bs, 1 << int(np.ceil(np.log2(m))))
            rows_padded = np.concatenate([idx, np.repeat(idx[-1:], size - m)])
            key, sub = jax.random.split(key)
            res = fit_batch(
                jnp.asarray(stamps[rows_padded]),
                sub,
                *args(rows_padded),
                self.lm_lambda0,
                self.try_jitter,
                float(self.tol),
                float(self.g_max),
                float(self.size_min_arcsec),
                self.model,
                self.n_iter,
                self.max_iter if last else self.n_iter,
                self.n_try,
                self.n_restart if last else 0,
                JAC_DTYPES[self.jacobian_precision],
                last,
                per_stamp,
            )
            outs.append([np.array(a)[:m] for a in res])
            if self.progress is not None and not last:
                self.progress(m)
        return [np.concatenate([o[i] for o in outs]) for i in range(6)]

    def measure(
        self,
        stamps: np.ndarray,
        psf_image: np.ndarray,
        pixel_scale_arcsec: float,
        noise_sigma: float,
    ) -> EstimatorResult:
        """Fit every stamp; see :class:`.base.ShapeEstimator` for the arguments. ``psf_image`` is
        one image (S, S) for every stamp, or one per stamp (N, S, S) (a survey's galaxies, each
        with its own PSF, fitted in the same batches)."""
        psfs = np.asarray(psf_image, dtype=np.float64)
        per_stamp = psfs.ndim == 3
        stamps, psf = validate_inputs(
            stamps, psfs[0] if per_stamp else psfs, pixel_scale_arcsec, noise_sigma
        )
        n, s, _ = stamps.shape
        if per_stamp:
            if psfs.shape != stamps.shape:
                raise EstimatorInputError(
                    f"psf_image must be (S, S) or one per stamp {stamps.shape}, got {psfs.shape}"
                )
            for one in psfs:
                check_psf_image(one)
        else:
            psfs = psf[None]
        rends = [
            Renderer.from_psf_image(p, pixel_scale_arcsec, model=self.model, n_pad=self.n_pad)
            for p in psfs
        ]
        psf_cov = np.stack([_psf_covariance(p, pixel_scale_arcsec) for p in psfs])
        bs = min(self.batch_size, n)
        with jax.enable_x64(True):
            grid0 = rends[0].grid
            if per_stamp:
                psf_re = np.stack([np.asarray(r.grid.psf_re) for r in rends])
                psf_im = np.stack([np.asarray(r.grid.psf_im) for r in rends])
            key = jax.random.key(0 if self.seed is None else int(self.seed))

            def args(rows: np.ndarray) -> tuple:
                """The PSF arguments of a batch of rows (one PSF, or one per stamp)."""
                if not per_stamp:
                    grid_, cov = grid0, psf_cov[0]
                else:
                    grid_ = FourierGrid(
                        jnp.asarray(psf_re[rows]),
                        jnp.asarray(psf_im[rows]),
                        grid0.kx,
                        grid0.ky,
                        grid0.stamp_size,
                    )
                    cov = psf_cov[rows]
                return grid_, jnp.asarray(cov), float(pixel_scale_arcsec), 1.0 / noise_sigma**2

            # pass 1: every stamp, the fixed Gauss-Newton count (what converges there is done)
            theta, chi2, rel_step, cov, steps, start = self._pass(
                stamps, np.arange(n), bs, key, args, last=False, per_stamp=per_stamp
            )
            # pass 2: the stamps pass 1 left unconverged or at a bound, to convergence
            redo = np.flatnonzero(~(rel_step < self.tol) | ~self._interior(theta))
            if redo.size:
                out2 = self._pass(
                    stamps,
                    redo,
                    self.refit_batch_size,
                    jax.random.fold_in(key, 1),
                    args,
                    True,
                    per_stamp,
                )
                for arr, new in zip((theta, chi2, rel_step, cov, steps, start), out2):
                    arr[redo] = new
                steps[redo] += self.n_iter
        flags = np.zeros(n, dtype=np.int64)
        flags[~(rel_step < self.tol)] |= FLAG_NOT_CONVERGED
        gabs = np.hypot(theta[:, 4], theta[:, 5])
        flags[(gabs > self.g_max) | (theta[:, 3] < self.size_min_arcsec)] |= FLAG_AT_BOUND
        finite = np.all(np.isfinite(theta), axis=1) & np.isfinite(chi2)
        flags[~finite] |= FLAG_NONFINITE
        with np.errstate(invalid="ignore"):
            sig = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
            degenerate = ~(theta[:, 0] > 0) | ~(np.maximum(sig[:, 4], sig[:, 5]) < 1.0)
        flags[degenerate] |= FLAG_FIT_FAILURE
        return EstimatorResult(
            g1=theta[:, 4],
            g2=theta[:, 5],
            size=theta[:, 3],
            flux=theta[:, 0],
            flags=flags,
            extra={
                "chi2": chi2,
                "x0": theta[:, 1],
                "y0": theta[:, 2],
                "sigma_g1": sig[:, 4],
                "sigma_g2": sig[:, 5],
                "rel_step": rel_step,
                "model": self.model,
                "n_iter": self.n_iter,
                "max_iter": self.max_iter,
                "n_restart": self.n_restart,
                "n_try": self.n_try,
                "n_steps": steps,
                "start_kept": start,
            },
        )


def _psf_covariance(psf: np.ndarray, pixel_scale: float) -> np.ndarray:
    """Unweighted second-moment matrix (arcsec^2) of a PSF image about its centroid."""
    s = psf.shape[0]
    coords = (np.arange(s) - (s - 1) / 2.0) * pixel_scale
    x, y = np.meshgrid(coords, coords)
    w = psf / psf.sum()
    mx, my = (w * x).sum(), (w * y).sum()
    dx, dy = x - mx, y - my
    return np.array(
        [[(w * dx * dx).sum(), (w * dx * dy).sum()], [(w * dx * dy).sum(), (w * dy * dy).sum()]]
    )

"""The ML fit's solver (:mod:`shearbridge.estimators.mlfit`): parameters, the exact chi2, its
gradient, Fisher matrix and Hessian from the renderer's Jacobian, the moments start, and damped
Newton / Levenberg-Marquardt to convergence with restarts, jitted and vmapped over a batch. Pure
JAX; the estimator class and its two passes live in :mod:`shearbridge.estimators.mlfit`."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.estimators.render import FourierGrid, inverse_crop, model_and_jacobian, model_k

__all__ = ["JAC_DTYPES", "eta_to_g", "g_to_eta", "fit_batch"]

JAC_DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
_ETA_MAX = 2.0 * float(np.arctanh(0.9999))
_LOG_SIZE_MIN = float(np.log(1e-4))


def eta_to_g(eta1: jax.Array, eta2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Conformal shear ``eta`` -> reduced shear ``g`` (smooth at eta = 0)."""
    r2 = eta1 * eta1 + eta2 * eta2
    small = r2 < 1e-8
    r = jnp.sqrt(jnp.where(small, 1.0, r2))
    factor = jnp.where(small, 0.5 - r2 / 24.0, jnp.tanh(0.5 * r) / r)
    return eta1 * factor, eta2 * factor


def g_to_eta(g1: jax.Array, g2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reduced shear ``g`` (|g| < 1) -> conformal shear ``eta = 2 atanh(|g|) g/|g|``."""
    r2 = g1 * g1 + g2 * g2
    small = r2 < 1e-8
    r = jnp.sqrt(jnp.where(small, 1.0, r2))
    factor = jnp.where(small, 2.0 + 2.0 * r2 / 3.0, 2.0 * jnp.arctanh(jnp.minimum(r, 0.9999)) / r)
    return g1 * factor, g2 * factor


def _theta_from_p(p: jax.Array) -> jax.Array:
    """Fit parameters ``p = (flux, x0, y0, log size, eta1, eta2)`` -> ``theta``."""
    g1, g2 = eta_to_g(p[4], p[5])
    return jnp.stack([p[0], p[1], p[2], jnp.exp(p[3]), g1, g2])


def _evaluate(p, data, grid, model, inv_var, jac_dtype, newton=True):
    """chi2, its gradient in p, the Fisher matrices in p and in theta, and the exact Hessian
    of chi2 / 2 in p, at p.

    ``grid`` is a :class:`.render.FourierGrid`; exact for the cropped stamp. The Hessian is
    the Fisher (Gauss-Newton) matrix plus the residual curvature ``sum_i r_i d2 m_i / dp2``,
    evaluated without further FFTs: the residual is pulled back once through the (linear)
    inverse FFT and crop to the half-plane of frequencies, where ``<r, m(p)>`` is an analytic
    function of ``p`` (:func:`_residual_curvature`).
    """
    theta = _theta_from_p(p)
    tjac = jax.jacfwd(_theta_from_p)(p)
    img, jac = model_and_jacobian(theta, grid, model, jac_dtype)
    resid = img - data
    jac = jac.reshape(6, -1)
    r = resid.reshape(-1)
    chi2 = jnp.sum(r * r) * inv_var
    grad_theta = 2.0 * inv_var * (jac @ r)
    fisher_theta = inv_var * (jac @ jac.T)
    fisher_p = tjac.T @ fisher_theta @ tjac
    if not newton:  # Gauss-Newton: the Fisher matrix stands for the Hessian
        return chi2, tjac.T @ grad_theta, fisher_p, fisher_theta, fisher_p
    hess_p = fisher_p + inv_var * _residual_curvature(p, resid, grid, model)
    return chi2, tjac.T @ grad_theta, fisher_p, fisher_theta, hess_p


def _residual_curvature(p, resid, grid, model):
    """``d2/dp2 sum_pixels resid * model(p)`` with ``resid`` (S, S) held fixed, (6, 6)."""
    n_pad = grid.psf_re.shape[0]
    zero = jnp.zeros((n_pad, n_pad // 2 + 1), resid.dtype)
    _, pull = jax.vjp(lambda re, im: inverse_crop(re, im, grid), zero, zero)
    c_re, c_im = pull(resid)  # <resid, crop(irfft2(X))> = sum(c_re Re X + c_im Im X)

    def inner(q):
        mk_r, mk_i, _, _ = model_k(_theta_from_p(q), grid, model)
        return jnp.sum(c_re * mk_r + c_im * mk_i)

    return jax.hessian(inner)(p)


def _moments_guess(data, psf_cov, pixel_scale, n_adapt=6):
    """Start ``p`` (6,) from adaptive Gaussian-weighted moments minus the PSF moments.

    Iterates the weight covariance ``W -> 2 M`` (the fixed point for a Gaussian of
    covariance W), so the result is the covariance of the PSF-convolved galaxy
    for a Gaussian profile (an approximation otherwise: it is only a start).
    """
    s = data.shape[0]
    coords = (jnp.arange(s) - (s - 1) / 2.0) * pixel_scale
    x = coords[None, :]
    y = coords[:, None]

    def body(_, state):
        wcov, mu = state
        inv = jnp.linalg.inv(wcov)
        dx = x - mu[0]
        dy = y - mu[1]
        wd = data * jnp.exp(
            -0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy)
        )
        norm = jnp.sum(wd)
        ok = norm > 0
        norm = jnp.where(ok, norm, 1.0)
        mx = jnp.sum(wd * x) / norm
        my = jnp.sum(wd * y) / norm
        dx = x - mx
        dy = y - my
        mxy = jnp.sum(wd * dx * dy) / norm
        new = 2.0 * jnp.array(
            [[jnp.sum(wd * dx * dx) / norm, mxy], [mxy, jnp.sum(wd * dy * dy) / norm]]
        )
        det = new[0, 0] * new[1, 1] - new[0, 1] ** 2
        good = ok & (det > 1e-6) & (new[0, 0] > 0) & (jnp.abs(mx) < 2.0) & (jnp.abs(my) < 2.0)
        return jnp.where(good, new, wcov), jnp.where(good, jnp.stack([mx, my]), mu)

    wcov0 = psf_cov + 0.25 * jnp.eye(2)
    wcov, mu = jax.lax.fori_loop(0, n_adapt, body, (wcov0, jnp.zeros(2)))
    gal = wcov - psf_cov
    a, b, c = gal[0, 0], gal[0, 1], gal[1, 1]
    det = a * c - b * b
    tr = a + c
    ok = (det > 0) & (tr > 0)
    size2 = jnp.where(ok, jnp.sqrt(jnp.where(ok, det, 1.0)), 0.25 * psf_cov[0, 0])
    safe_tr = jnp.where(ok, tr, 1.0)
    e1 = jnp.where(ok, (a - c) / safe_tr, 0.0)
    e2 = jnp.where(ok, 2.0 * b / safe_tr, 0.0)
    e = jnp.sqrt(e1 * e1 + e2 * e2)
    shrink = jnp.where(e > 0.9, 0.9 / jnp.maximum(e, 1e-12), 1.0)
    e = jnp.minimum(e, 0.9)
    to_g = shrink / (1.0 + jnp.sqrt(1.0 - e * e))  # distortion e -> reduced shear g
    eta1, eta2 = g_to_eta(e1 * to_g, e2 * to_g)
    flux0 = jnp.sum(data)
    flux0 = jnp.where(flux0 > 0, flux0, 1.0)
    size = jnp.sqrt(jnp.maximum(size2, 1e-4))
    return jnp.stack([flux0, mu[0], mu[1], jnp.log(size), eta1, eta2])


_LAM_MIN, _LAM_MAX = 1e-10, 1e10


def _rel_step(grad, fis):
    """Largest undamped Gauss-Newton step ``|F^-1 grad / 2|`` in units of the parameters'
    standard errors ``sqrt(diag F^-1)`` (``F`` the Fisher matrix in ``p``)."""
    eye = jnp.eye(6)
    step = -jnp.linalg.solve(fis + 1e-14 * jnp.trace(fis) * eye, 0.5 * grad)
    sd = jnp.sqrt(jnp.abs(jnp.diagonal(jnp.linalg.inv(fis))))
    return jnp.max(jnp.abs(step) / sd)


def _clamp(p):
    """Keep ``log size >= log 1e-4`` and ``|eta| <= _ETA_MAX`` (|g| <= 0.9999)."""
    p = p.at[3].set(jnp.maximum(p[3], _LOG_SIZE_MIN))
    eta = jnp.hypot(p[4], p[5])
    return p.at[4:6].multiply(jnp.where(eta > _ETA_MAX, _ETA_MAX / jnp.maximum(eta, 1e-30), 1.0))


def _interior(p, g_max, size_min):
    """Finite and inside the ``FLAG_AT_BOUND`` limits."""
    theta = _theta_from_p(p)
    return (
        (jnp.hypot(theta[4], theta[5]) <= g_max)
        & (theta[3] >= size_min)
        & jnp.all(jnp.isfinite(theta))
    )


def _lm_fit(
    starts, lam0s, data, grid, model, inv_var, n_min, n_max, tol, g_max, size_min, jac_dtype, newton
):
    """Damped Newton / Levenberg-Marquardt from ``starts`` (K, 6), one after another.

    Each start is iterated until the convergence criterion holds (after at least ``n_min``
    steps: ``_rel_step < tol``), or ``n_max`` steps, or the damping reaches its cap (no
    step lowers chi2). A start that ends converged inside the bounds ends the fit; otherwise
    the next start is tried, and the lowest chi2 of the finished starts is kept. One
    ``lax.while_loop`` with one model evaluation per pass (a new start is evaluated in the
    pass that switches to it), so under ``vmap`` a batch costs the largest per-galaxy count.

    Returns ``(p, chi2, grad, Fisher in p, Fisher in theta, steps taken, start index kept)``.
    """
    n_starts = starts.shape[0]
    eye = jnp.eye(6)
    dt = starts.dtype

    def cond(state):
        return ~state["done"]

    def body(s):
        # the step: Newton on the exact Hessian where positive definite, else Gauss-Newton
        hess = s["hess"]
        pd = jnp.all(jnp.isfinite(jnp.linalg.cholesky(hess)))
        a = jnp.where(pd, hess, s["fis"])
        damped = a + s["lam"] * jnp.diag(jnp.diag(a)) + 1e-14 * jnp.trace(a) * eye
        p_step = _clamp(s["p"] - jnp.linalg.solve(damped, 0.5 * s["grad"]))
        pending = s["pending"]
        p_new = jnp.where(pending, starts[s["k"]], p_step)
        chi_n, g_n, f_n, ft_n, h_n = _evaluate(p_new, data, grid, model, inv_var, jac_dtype, newton)
        finite = jnp.isfinite(chi_n) & jnp.all(jnp.isfinite(g_n))
        ok = pending | (finite & (chi_n <= s["chi"]))
        lam = jnp.where(
            pending,
            lam0s[s["k"]],
            jnp.where(
                ok, jnp.maximum(s["lam"] * 0.1, _LAM_MIN), jnp.minimum(s["lam"] * 10.0, _LAM_MAX)
            ),
        )
        pick = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        cur = dict(
            p=pick(p_new, s["p"]),
            chi=pick(chi_n, s["chi"]),
            grad=pick(g_n, s["grad"]),
            fis=pick(f_n, s["fis"]),
            fis_t=pick(ft_n, s["fis_t"]),
            hess=pick(h_n, s["hess"]),
        )
        it = jnp.where(pending, 0, s["it"] + 1)
        conv = (it >= n_min) & (_rel_step(cur["grad"], cur["fis"]) < tol)
        # pinned at a bound: the (clamped) step taken moved no parameter by tol standard errors
        sd = jnp.sqrt(jnp.abs(jnp.diagonal(jnp.linalg.inv(cur["fis"]))))
        moved = jnp.max(jnp.abs(cur["p"] - s["p"]) / sd)
        pinned = ok & (moved < tol) & ~_interior(cur["p"], g_max, size_min)
        finished = ~pending & (conv | pinned | (it >= n_max) | (lam >= _LAM_MAX))
        good = conv & jnp.isfinite(cur["chi"]) & _interior(cur["p"], g_max, size_min)
        # the lowest chi2 wins; a converged, interior fit also within tol^2 (the chi2 change of a
        # step of tol standard errors) of it: the same minimum, reached by a cut-off start
        better = finished & (
            (cur["chi"] < s["best"]["chi"]) | (good & (cur["chi"] <= s["best"]["chi"] + tol * tol))
        )
        best = jax.tree_util.tree_map(lambda c, b: jnp.where(better, c, b), cur, s["best"])
        done = finished & (good | (s["k"] + 1 >= n_starts))
        nxt = finished & ~done
        return dict(
            cur,
            lam=lam,
            it=it,
            k=jnp.where(nxt, s["k"] + 1, s["k"]),
            pending=nxt,
            done=done,
            best=best,
            best_k=jnp.where(better, s["k"], s["best_k"]),
            steps=s["steps"] + 1 - pending.astype(jnp.int32),
        )

    blank = dict(
        p=starts[0],
        chi=jnp.asarray(jnp.inf, dt),
        grad=jnp.zeros(6, dt),
        fis=eye.astype(dt),
        fis_t=eye.astype(dt),
        hess=eye.astype(dt),
    )
    init = dict(
        blank,
        lam=jnp.asarray(lam0s[0], dt),
        it=jnp.int32(0),
        k=jnp.int32(0),
        pending=jnp.bool_(True),
        done=jnp.bool_(False),
        best=blank,
        best_k=jnp.int32(0),
        steps=jnp.int32(0),
    )
    out = jax.lax.while_loop(cond, body, init)
    b = out["best"]
    return b["p"], b["chi"], b["grad"], b["fis"], b["fis_t"], out["steps"], out["best_k"]


def _restart_points(guess, n_restart):
    """Deterministic extra starts for a fit that fails from the moments guess: round shape at
    the guessed size, then round at twice and at half that size (cycled)."""
    shifts = (0.0, float(np.log(2.0)), float(-np.log(2.0)))
    rows = [guess.at[4:6].set(0.0).at[3].add(shifts[i % len(shifts)]) for i in range(n_restart)]
    return jnp.stack(rows) if rows else jnp.zeros((0, 6), guess.dtype)


@partial(
    jax.jit,
    static_argnames=(
        "model",
        "n_min",
        "n_max",
        "n_try",
        "n_restart",
        "jac_dtype",
        "newton",
        "per_stamp",
    ),
)
def fit_batch(
    data,
    key,
    grid,
    psf_cov,
    pixel_scale,
    inv_var,
    lam0,
    jitter,
    tol,
    g_max,
    size_min,
    model,
    n_min,
    n_max,
    n_try,
    n_restart,
    jac_dtype,
    newton,
    per_stamp=False,
):
    """Fit a batch (B, S, S); returns theta (B, 6), chi2, max relative last step, cov(theta),
    Newton steps taken and the index of the start kept. ``per_stamp``: ``grid.psf_re, psf_im``
    (B, N, M) and ``psf_cov`` (B, 2, 2) hold one PSF per stamp (else one for the batch)."""

    def fit_one(d, k, grid, psf_cov):
        guess = _moments_guess(d, psf_cov, pixel_scale)
        kick = jax.random.normal(k, (n_try, 6)) * jitter
        kick = kick.at[0].set(0.0)  # the first try starts at the moments guess
        firsts = guess[None, :] + kick * jnp.array([guess[0], 1.0, 1.0, 1.0, 1.0, 1.0])
        extra = _restart_points(guess, n_restart)
        lam0s = jnp.concatenate(
            [jnp.full(1, lam0, guess.dtype), jnp.full(n_restart, 1.0, guess.dtype)]
        )

        def run(s0):
            starts = jnp.concatenate([s0[None, :], extra])
            return _lm_fit(
                starts,
                lam0s,
                d,
                grid,
                model,
                inv_var,
                n_min,
                n_max,
                tol,
                g_max,
                size_min,
                jac_dtype,
                newton,
            )

        fits = jax.vmap(run)(firsts)
        best = jnp.argmin(jnp.where(jnp.isfinite(fits[1]), fits[1], jnp.inf))
        return jax.tree_util.tree_map(lambda a: a[best], fits)

    keys = jax.random.split(key, data.shape[0])
    if per_stamp:
        stamp_axes = FourierGrid(0, 0, None, None, grid.stamp_size)
        fitted = jax.vmap(fit_one, in_axes=(0, 0, stamp_axes, 0))(data, keys, grid, psf_cov)
    else:
        fitted = jax.vmap(fit_one, in_axes=(0, 0, None, None))(data, keys, grid, psf_cov)
    p, chi, grad, fis_p, fis_t, steps, k_used = fitted
    theta = jax.vmap(_theta_from_p)(p)
    rel_step = jax.vmap(_rel_step)(grad, fis_p)
    return theta, chi, rel_step, jnp.linalg.inv(fis_t), steps, k_used

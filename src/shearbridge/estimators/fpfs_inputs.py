"""What AnaCal is given besides the pixels: the centroid of each stamp, measured on the image
(:func:`weighted_centroid`; the truth only for a control, :func:`given_positions`), and a check
that the PSF image is centred on a pixel (:func:`check_psf_centred`). Pure NumPy; used by
:mod:`shearbridge.estimators.anacal`."""

from __future__ import annotations

import numpy as np

from shearbridge.estimators.base import (
    FLAG_FIT_FAILURE,
    FLAG_NONPOSITIVE_FLUX,
    FLAG_NOT_CONVERGED,
    EstimatorInputError,
)

__all__ = [
    "PSF_CENTRE_TOL_PX",
    "check_psf_centred",
    "given_positions",
    "padded_psf",
    "renoise_images",
    "weighted_centroid",
]


#: Largest distance (pixels) of the PSF image's centroid from its centre pixel ``S // 2``.
PSF_CENTRE_TOL_PX = 0.25


def check_psf_centred(psf: np.ndarray) -> None:
    """The PSF image must have an odd size and its centroid on the centre pixel ``S // 2`` (within
    :data:`PSF_CENTRE_TOL_PX`): AnaCal moves that pixel to the centre of its transform, so an
    even image (GalSim centres it between pixels) or an off-centre PSF shifts every galaxy's phase
    and biases the shear by per cents. Raises :class:`EstimatorInputError` naming the problem."""
    size = psf.shape[0]
    if size % 2 == 0:
        raise EstimatorInputError(
            f"AnaCal needs an odd-sized PSF image (centred on a pixel), got {size} x {size}"
        )
    pix = np.arange(size) - size // 2
    total = float(psf.sum())
    cx, cy = (
        float((psf.sum(axis=0) * pix).sum() / total),
        float((psf.sum(axis=1) * pix).sum() / total),
    )
    if np.hypot(cx, cy) > PSF_CENTRE_TOL_PX:
        raise EstimatorInputError(
            f"the PSF image's centroid is ({cx:+.2f}, {cy:+.2f}) px from its centre pixel "
            f"{size // 2}: centre it (AnaCal assumes the PSF sits on pixel S // 2)"
        )


def weighted_centroid(
    stamps: np.ndarray,
    n_iter: int = 50,
    init_sigma_px: float = 3.0,
    min_sigma_px: float = 1.0,
    tol_px: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid of each stamp (N, S, S) from an iterated, adaptively sized round Gaussian weight.

    Each step weights the image with ``exp(-r^2 / 2 s^2)`` about the current centre ``c``,
    measures the weighted mean ``m`` and covariance ``C'``, and moves to
    ``c + (1 - C'/s^2)^-1 (m - c)`` (exact for a Gaussian image; eigenvalues of ``C'/s^2``
    clipped to [0.05, 0.95]); ``s`` then follows the image's deconvolved size, between
    ``min_sigma_px`` and ``S / 8`` (a cap that keeps stamp truncation of very large
    galaxies out: centroid errors <= 4e-3 px for them). The fixed point is the symmetry
    centre of any point-symmetric image. Iterates until a step is below ``tol_px`` (at most
    ``n_iter`` steps). Returns ``x, y`` (0-based pixels: x column, y row) and a status per
    stamp: 0, ``FLAG_NONPOSITIVE_FLUX``, ``FLAG_FIT_FAILURE`` (left the stamp; position set
    to the stamp centre) or ``FLAG_NOT_CONVERGED``.
    """
    img = np.asarray(stamps, dtype=np.float64)
    n, size, _ = img.shape
    pix = np.arange(size, dtype=np.float64)
    centre = (size - 1) / 2.0
    cx = np.full(n, centre)
    cy = np.full(n, centre)
    s2 = np.full(n, float(init_sigma_px) ** 2)
    smin2, smax2 = float(min_sigma_px) ** 2, (size / 8.0) ** 2
    status = np.zeros(n, dtype=np.int64)
    run = np.arange(n)  # rows still iterating
    for _ in range(int(n_iter)):
        if run.size == 0:
            break
        im, x0, y0, w2 = img[run], cx[run], cy[run], s2[run]
        dx = pix[None, :] - x0[:, None]  # (n, S)
        dy = pix[None, :] - y0[:, None]
        wx = np.exp(-0.5 * dx * dx / w2[:, None])
        wy = np.exp(-0.5 * dy * dy / w2[:, None])
        rows = np.einsum("nyx,nx->ny", im, wx)  # sum over x of I w_x, per row y
        cols = np.einsum("nyx,ny->nx", im, wy)  # sum over y of I w_y, per column x
        m0 = np.einsum("ny,ny->n", rows, wy)
        bad = ~(m0 > 0)
        m0 = np.where(bad, 1.0, m0)
        mx = np.einsum("nx,nx->n", cols * wx, dx) / m0
        my = np.einsum("ny,ny->n", rows * wy, dy) / m0
        # weighted covariance C' in units of the weight's variance s^2
        vxx = (np.einsum("nx,nx->n", cols * wx, dx * dx) / m0 - mx * mx) / w2
        vyy = (np.einsum("ny,ny->n", rows * wy, dy * dy) / m0 - my * my) / w2
        rows_x = np.einsum("nyx,nx->ny", im, wx * dx)
        vxy = (np.einsum("ny,ny->n", rows_x, wy * dy) / m0 - mx * my) / w2
        # centre of a Gaussian image: c + (1 - C'/s^2)^-1 (m - c); eigenvalues of C'/s^2 clipped
        half_tr = 0.5 * (vxx + vyy)
        rad = np.sqrt(0.25 * (vxx - vyy) ** 2 + vxy * vxy)
        i1 = 1.0 / (1.0 - np.clip(half_tr + rad, 0.05, 0.95))
        i2 = 1.0 / (1.0 - np.clip(half_tr - rad, 0.05, 0.95))
        two_t = np.arctan2(2.0 * vxy, vxx - vyy)
        hm, hd = 0.5 * (i1 + i2), 0.5 * (i1 - i2)
        gxx, gxy, gyy = hm + hd * np.cos(two_t), hd * np.sin(two_t), hm - hd * np.cos(two_t)
        nx_ = x0 + gxx * mx + gxy * my
        ny_ = y0 + gxy * mx + gyy * my
        step = np.hypot(nx_ - x0, ny_ - y0)
        ratio = np.clip(half_tr, 0.05, 0.75)
        off = ~((nx_ >= 0) & (nx_ <= size - 1) & (ny_ >= 0) & (ny_ <= size - 1))
        status[run[bad]] |= FLAG_NONPOSITIVE_FLUX
        status[run[off & ~bad]] |= FLAG_FIT_FAILURE
        move = ~bad & ~off
        upd = run[move]
        cx[upd], cy[upd] = nx_[move], ny_[move]
        s2[upd] = np.clip(w2[move] * ratio[move] / (1.0 - ratio[move]), smin2, smax2)
        run = run[move & ~(step < tol_px)]
    status[run] |= FLAG_NOT_CONVERGED
    cx[(status & FLAG_FIT_FAILURE) != 0] = centre
    cy[(status & FLAG_FIT_FAILURE) != 0] = centre
    return cx, cy, status


def given_positions(
    positions: tuple[np.ndarray, np.ndarray] | None, n: int, detection: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x, y`` and zero flags of the positions a control passes (``detection="truth"`` takes them,
    and only it): :class:`EstimatorInputError` unless both hold ``n`` finite values."""
    if (positions is None) != (detection != "truth"):
        raise EstimatorInputError(
            "AnaCal: positions are given exactly when detection='truth' (a control), got "
            f"detection={detection!r} and positions {'None' if positions is None else 'given'}"
        )
    x, y = (np.asarray(a, np.float64).reshape(-1) for a in positions)
    if x.shape != (n,) or y.shape != (n,) or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise EstimatorInputError(f"AnaCal: positions must be {n} finite x and y each")
    return x, y, np.zeros(n, dtype=np.int64)


def padded_psf(psf: np.ndarray, npix: int) -> np.ndarray:
    """The unit-sum PSF on ``npix x npix``, its centre pixel ``S // 2`` moved to ``npix // 2``."""
    size = psf.shape[0]
    out = np.zeros((npix, npix))
    o = npix // 2 - size // 2
    out[o : o + size, o : o + size] = psf / psf.sum()
    return out


def renoise_images(
    first: int,
    n: int,
    size: int,
    noise_sigma: float,
    seed: int,
    noise_share: int,
    antithetic: bool,
    dtype: type = np.float64,
) -> np.ndarray:
    """Renoising images of stamps ``first .. first + n - 1`` (counted across calls): stamp ``j``
    gets child ``j // noise_share`` of ``SeedSequence(seed)`` times ``noise_sigma``, negated at odd
    positions within its group when ``antithetic``."""
    out = np.empty((n, size, size), dtype=dtype)
    for i in range(n):
        group = (first + i) // noise_share
        if i == 0 or group != (first + i - 1) // noise_share:
            child = np.random.SeedSequence(int(seed), spawn_key=(group,))
            field_ = np.random.default_rng(child).normal(0.0, 1.0, size=(size, size))
        flip = -1.0 if (antithetic and ((first + i) % noise_share) % 2) else 1.0
        out[i] = flip * noise_sigma * field_
    return out

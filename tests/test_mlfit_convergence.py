"""The JAX ML fit runs to convergence at survey S/N (not a fixed iteration count).

A noisy low-S/N batch (ShearNet's Gaussian galaxies, noise sigma 2e-2: median matched-filter
S/N ~ 10) is fitted once; every galaxy whose shape is determined (sigma_g < 1, no
``FLAG_FIT_FAILURE``) must meet the convergence criterion, the criterion must really hold for
unflagged galaxies, and a repeated fit must give the same bytes.
"""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from shearbridge.estimators.base import FLAG_FIT_FAILURE, FLAG_NOT_CONVERGED
from shearbridge.estimators.mlfit import MLFitEstimator

SCALE = 0.141
SIZE = 53
N = 32
NOISE = 2e-2


def _stamps() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(21)
    psf = galsim.Gaussian(sigma=0.25)
    out = []
    for _ in range(N):
        g = rng.normal(0.0, 0.26, 2)
        while np.hypot(*g) >= 0.9:
            g = rng.normal(0.0, 0.26, 2)
        size = max(abs(rng.normal(0.0, 0.5)), 0.14)
        gal = galsim.Gaussian(sigma=size, flux=rng.uniform(1, 5)).shear(g1=g[0], g2=g[1])
        off = rng.uniform(-0.2, 0.2, 2) / SCALE
        img = galsim.Convolve(gal, psf).drawImage(
            nx=SIZE, ny=SIZE, scale=SCALE, dtype=np.float64, offset=tuple(off)
        )
        out.append(img.array)
    psf_img = psf.drawImage(nx=SIZE, ny=SIZE, scale=SCALE, dtype=np.float64).array
    noisy = np.array(out) + np.random.default_rng(22).normal(0.0, NOISE, (N, SIZE, SIZE))
    return noisy, psf_img


@pytest.fixture(scope="module")
def fitted():
    stamps, psf = _stamps()
    est = MLFitEstimator(model="gauss", batch_size=N, seed=0)
    return est, stamps, psf, est.measure(stamps, psf, SCALE, NOISE)


def test_low_snr_batch_converges(fitted):
    est, _, _, res = fitted
    determined = (res.flags & FLAG_FIT_FAILURE) == 0
    not_conv = (res.flags & FLAG_NOT_CONVERGED) != 0
    # measured: every galaxy with a determined shape converges (the old fixed 6 iterations left
    # ~40 % of such a batch unconverged); allow one in N for platform rounding
    assert determined.mean() >= 0.7, np.bincount(res.flags)
    assert np.sum(not_conv & determined) <= 1, res.extra["rel_step"][determined]
    assert (res.flags == 0).mean() >= 0.7


def test_unflagged_fits_meet_the_criterion(fitted):
    est, _, _, res = fitted
    ok = res.flags == 0
    assert ok.any()
    assert np.all(res.extra["rel_step"][ok] <= est.tol)
    assert np.all(res.extra["n_steps"][ok] >= est.n_iter)
    assert np.all(res.extra["n_steps"] <= (1 + est.n_restart) * est.max_iter)


def test_deterministic(fitted):
    est, stamps, psf, res = fitted
    again = est.measure(stamps, psf, SCALE, NOISE)
    for a, b in ((res.g1, again.g1), (res.g2, again.g2), (res.flags, again.flags)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    assert res.extra["rel_step"].tobytes() == again.extra["rel_step"].tobytes()


def test_settings_are_validated():
    with pytest.raises(ValueError, match="max_iter"):
        MLFitEstimator(n_iter=6, max_iter=5)
    with pytest.raises(ValueError, match="n_restart"):
        MLFitEstimator(n_restart=-1)


def test_one_psf_per_stamp_fits_as_one_psf_per_call():
    """Stamps with their own PSFs fitted in one batch give what one call per PSF gives."""

    from shearbridge.estimators.base import EstimatorInputError

    scale, stamps, psfs = 0.141, [], []
    for fwhm, g1 in ((0.5, 0.2), (0.8, -0.3), (0.65, 0.1)):
        psf = galsim.Moffat(beta=3.5, fwhm=fwhm)
        gal = galsim.Gaussian(sigma=0.4, flux=2.0).shear(g1=g1, g2=0.05)
        stamps.append(galsim.Convolve(gal, psf).drawImage(nx=53, ny=53, scale=scale).array)
        psfs.append(psf.drawImage(nx=53, ny=53, scale=scale).array)
    stamps, psfs = np.array(stamps), np.array(psfs)
    noisy = stamps + 1e-3 * np.random.default_rng(5).standard_normal(stamps.shape)
    est = MLFitEstimator(model="gauss", seed=0)
    together = est.measure(noisy, psfs, scale, 1e-3)
    apart = np.concatenate(
        [est.measure(noisy[i : i + 1], psfs[i], scale, 1e-3).g for i in range(3)]
    )
    assert np.allclose(together.g, apart, rtol=0, atol=1e-12)
    with pytest.raises(EstimatorInputError, match="one per stamp"):
        est.measure(noisy, psfs[:2], scale, 1e-3)

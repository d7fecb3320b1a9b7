"""Survey-mode AnaCal (its own detection, selection and renoising): fast checks."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("anacal")
galsim = pytest.importorskip("galsim")

from shearbridge.estimators.anacal_detect import AnaCalDetectEstimator  # noqa: E402
from shearbridge.estimators.base import EstimatorInputError  # noqa: E402

SCALE = 0.141
SIZE = 53


def _psf() -> galsim.GSObject:
    return galsim.Moffat(beta=3.5, fwhm=0.65)


def _psf_image() -> np.ndarray:
    return _psf().drawImage(nx=SIZE, ny=SIZE, scale=SCALE).array


def _stamps(
    g1: float, g2: float, offsets: int = 0, orients: tuple[int, ...] = (0, 1, 2, 3)
) -> np.ndarray:
    """Orientations (k x 45 deg) of one sheared exponential; with ``offsets`` = n, each on an
    n x n grid of sub-pixel centres (a quadrature of the uniform offset average)."""
    u = (np.arange(offsets) + 0.5) / offsets - 0.5 if offsets else np.zeros(1)
    out = []
    for dx in u:
        for dy in u:
            for k in orients:
                e = (0.2 + 0.1j) * np.exp(1j * np.pi / 2 * k)
                gal = galsim.Exponential(half_light_radius=0.4, flux=3.0).shear(
                    g1=e.real, g2=e.imag
                )
                gal = gal.shear(g1=g1, g2=g2)
                img = (
                    galsim.Convolve(gal, _psf())
                    .shift(dx * SCALE, dy * SCALE)
                    .drawImage(nx=SIZE, ny=SIZE, scale=SCALE)
                )
                out.append(img.array)
    return np.array(out)


def _paired_m(est: AnaCalDetectEstimator, **kw: object) -> float:
    psf = _psf_image()
    res = {}
    for s in (1, -1):
        r = est.measure(_stamps(0.02 * s, 0.0, **kw), psf, SCALE, 1e-4)
        assert np.all(r.extra["n_detected"] == 1)
        res[s] = (r.g1.sum(), r.extra["response"][:, 0].sum())
    g_hat = (res[1][0] - res[-1][0]) / (res[1][1] + res[-1][1])
    return float(g_hat / 0.02 - 1.0)


def test_noise_free_shear_recovered() -> None:
    # Centred on a pixel (AnaCal's own test geometry): m = 2.8e-4 (the g^2 term).
    m = _paired_m(AnaCalDetectEstimator(noise_rev=False))
    assert abs(m) < 2e-3


def test_noise_free_subpixel_offsets() -> None:
    # 6 x 6 sub-pixel centres x 2 orientations: m = -0.003 with the default omega_v; the old
    # noise-scaled omega_v (1e-3 x sd_det, a near-hard peak cut) gave -0.016 here.
    m = _paired_m(AnaCalDetectEstimator(noise_rev=False), offsets=6, orients=(0, 2))
    assert abs(m) < 8e-3


def test_bad_input_raises() -> None:
    est = AnaCalDetectEstimator()
    psf = _psf_image()
    bad = np.zeros((2, SIZE, SIZE))
    bad[1, 3, 3] = np.nan
    with pytest.raises(EstimatorInputError, match="NaN"):
        est.measure(bad, psf, SCALE, 1e-2)
    with pytest.raises(EstimatorInputError, match="square"):
        est.measure(np.zeros((2, SIZE, SIZE - 1)), psf, SCALE, 1e-2)
    with pytest.raises(EstimatorInputError, match="psf_image shape"):
        est.measure(np.zeros((2, SIZE, SIZE)), psf[:-1, :-1], SCALE, 1e-2)


def test_same_seed_same_numbers() -> None:
    psf = _psf_image()
    rng = np.random.default_rng(1)
    x = _stamps(0.02, 0.0) + rng.normal(0, 1e-2, (4, SIZE, SIZE))
    a = AnaCalDetectEstimator(seed=3).measure(x, psf, SCALE, 1e-2)
    b = AnaCalDetectEstimator(seed=3).measure(x, psf, SCALE, 1e-2)
    np.testing.assert_array_equal(a.g1, b.g1)
    np.testing.assert_array_equal(a.extra["response"], b.extra["response"])
    np.testing.assert_array_equal(a.extra["n_detected"], b.extra["n_detected"])


def test_blank_stamp_contributes_nothing() -> None:
    est = AnaCalDetectEstimator()
    r = est.measure(np.zeros((3, SIZE, SIZE)), _psf_image(), SCALE, 1e-2)
    assert np.all(r.extra["n_detected"] == 0)
    assert np.all(r.g1 == 0) and np.all(r.g2 == 0)
    assert np.all(r.extra["response"] == 0)
    assert np.all(r.flags == 0)

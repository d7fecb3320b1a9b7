"""GalSim HSM wrappers (REGAUSS, KSB): label convention, known biases, failures; metacal.

Noise-free GalSim stamps of elliptical Gaussians (ShearNet's PSF, pixel and stamp).
REGAUSS on an elliptical Gaussian convolved with a Gaussian PSF is exact up to its
adaptive-moment convergence (``precision = 1e-6`` of GalSim's HSMParams), as long
as the galaxy fits in the stamp; KSB is a first-order-in-shear method whose
relative error grows as ~|g|^2 (measured here: 1.05 |g|^2 at |g| = 0.05).
"""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from shearbridge.estimators.base import FLAG_HSM_FAILURE
from shearbridge.estimators.hsm import HSMEstimator, distortion_to_shear, shear_to_distortion
from shearbridge.stats.metacal import Metacal

SCALE = 0.141
SIZE = 53
PSF = galsim.Gaussian(sigma=0.25)
HSM_PRECISION = 1e-6  # GalSim's default convergence tolerance of the adaptive moments


def stamp(size, g1, g2, dx=0.0, dy=0.0, flux=2.0):
    gal = galsim.Gaussian(sigma=size, flux=flux).shear(g1=g1, g2=g2)
    return (
        galsim.Convolve(gal, PSF)
        .drawImage(nx=SIZE, ny=SIZE, scale=SCALE, dtype=np.float64, offset=(dx / SCALE, dy / SCALE))
        .array
    )


def psf_image():
    return PSF.drawImage(nx=SIZE, ny=SIZE, scale=SCALE, dtype=np.float64).array


# contained galaxies (sigma <= 0.5"), both components, both signs, small and large |g|
CASES = [
    (s, g1, g2)
    for s in (0.15, 0.3, 0.5)
    for g1, g2 in ((0.02, 0.0), (0.0, -0.02), (-0.3, 0.1), (0.2, 0.45))
]


def test_distortion_shear_roundtrip():
    g = np.array([[0.0, 0.0], [0.01, -0.02], [0.5, 0.3], [-0.9, 0.05]])
    e = np.array(shear_to_distortion(g[:, 0], g[:, 1])).T
    np.testing.assert_allclose(np.array(distortion_to_shear(e[:, 0], e[:, 1])).T, g, atol=1e-12)


def test_regauss_returns_label_convention():
    stamps = np.array([stamp(s, g1, g2, 0.07, -0.11) for s, g1, g2 in CASES])
    res = HSMEstimator("REGAUSS").measure(stamps, psf_image(), SCALE, 1e-5)
    truth = np.array([(g1, g2) for _, g1, g2 in CASES])
    assert np.all(res.flags == 0)
    # exact up to the moment iteration: allow 10x the convergence tolerance
    np.testing.assert_allclose(
        res.g,
        truth,
        rtol=0,
        atol=10 * HSM_PRECISION,
        err_msg="REGAUSS g (converted from e) vs label g",
    )


def test_ksb_returns_label_convention_to_first_order():
    stamps = np.array([stamp(s, g1, g2) for s, g1, g2 in CASES])
    res = HSMEstimator("KSB").measure(stamps, psf_image(), SCALE, 1e-5)
    truth = np.array([(g1, g2) for _, g1, g2 in CASES])
    gabs = np.hypot(truth[:, 0], truth[:, 1])
    # KSB is linear in the shear: relative error O(|g|^2) (coefficient ~1 measured)
    tol = (2.0 * gabs**2 + 10 * HSM_PRECISION / gabs) * gabs
    err = np.hypot(res.g1 - truth[:, 0], res.g2 - truth[:, 1])
    assert np.all(err < tol), np.c_[gabs, err, tol]
    assert np.all(np.sign(res.g[np.abs(truth) > 0]) == np.sign(truth[np.abs(truth) > 0]))


def test_regauss_truncation_bias_on_large_galaxies():
    """Galaxies overflowing the 7.5" stamp lose flux at the edge: REGAUSS |g| shrinks."""
    big = np.array([stamp(1.3, 0.2, 0.0)])
    res = HSMEstimator("REGAUSS").measure(big, psf_image(), SCALE, 1e-5)
    assert res.flags[0] == 0 and res.g1[0] < 0.2 - 10 * HSM_PRECISION


def test_failures_are_flags_not_exceptions():
    rng = np.random.default_rng(0)
    stamps = np.stack(
        [np.zeros((SIZE, SIZE)), rng.normal(0, 1e-3, (SIZE, SIZE)), stamp(0.3, 0.1, 0.1)]
    )
    for method in ("REGAUSS", "KSB"):
        res = HSMEstimator(method).measure(stamps, psf_image(), SCALE, 1e-3)
        assert res.flags[0] & FLAG_HSM_FAILURE and np.isnan(res.g1[0])
        assert res.flags[2] == 0 and np.isfinite(res.g1[2])
    with pytest.raises(ValueError, match="method"):
        HSMEstimator("BJX")


def ring(g_applied, sizes=(0.3, 0.5), n_angle=8, e=0.3):
    """Intrinsic shapes on a ring (cancelling in the mean), then a constant shear."""
    out = []
    for s in sizes:
        for a in np.arange(n_angle) * np.pi / n_angle:
            gal = galsim.Gaussian(sigma=s, flux=2.0).shear(
                g1=e * np.cos(2 * a), g2=e * np.sin(2 * a)
            )
            obj = galsim.Convolve(gal.shear(g1=g_applied[0], g2=g_applied[1]), PSF)
            out.append(obj.drawImage(nx=SIZE, ny=SIZE, scale=SCALE, dtype=np.float64).array)
    return np.array(out)


def test_metacal_calibrates_ksb():
    """KSB's noshear mean is biased by ~18% here; metacal's R removes it."""
    g_true = np.array([0.02, -0.01])
    mc = Metacal(HSMEstimator("KSB"), step=0.01)
    res = mc.measure(ring(g_true), psf_image(), SCALE, 1e-5)
    raw = res.results["noshear"].g.mean(axis=0)
    assert np.all(np.abs(raw - g_true) > 0.1 * np.abs(g_true))
    # residual: O(step^2) from the finite difference plus the interpolated-image
    # (quintic interpolant) error of GalSim, ~1e-3 relative
    tol = (0.01**2 + 1e-3) * np.abs(g_true) + 1e-6
    assert np.all(np.abs(res.shear - g_true) < tol), (res.shear, res.R)


def test_metacal_needs_seed_for_fix_noise():
    with pytest.raises(ValueError, match="seed"):
        Metacal(HSMEstimator("REGAUSS"), fix_noise=True)
    gals = ring((0.0, 0.0), sizes=(0.3,), n_angle=2)
    sets, _ = Metacal(HSMEstimator("REGAUSS"), fix_noise=True, seed=1).images(
        gals, psf_image(), SCALE, 1e-4
    )
    again, _ = Metacal(HSMEstimator("REGAUSS"), fix_noise=True, seed=1).images(
        gals, psf_image(), SCALE, 1e-4
    )
    plain, _ = Metacal(HSMEstimator("REGAUSS")).images(gals, psf_image(), SCALE, 1e-4)
    assert set(sets) == {"noshear", "1p", "1m", "2p", "2m"}
    np.testing.assert_array_equal(sets["1p"], again["1p"])  # seeded
    # the added noise went through deconvolution and reconvolution with a *wider*
    # PSF: a filter of modulus <= 1, so 0 < its per-pixel std <= the input sigma
    added = np.std(sets["noshear"] - plain["noshear"])
    assert 0.0 < added <= 1e-4


def test_a_negated_stamp_is_flagged_not_measured():
    """A sign error in the input used to return flag 0 and a shear; now it is flagged (the
    adaptive-moment amplitude is negative). A noisy galaxy whose stamp sums to < 0 is still
    measured."""
    from shearbridge.estimators.base import FLAG_NONPOSITIVE_FLUX

    good = stamp(0.3, 0.1, 0.0)
    res = HSMEstimator("REGAUSS").measure(np.stack([good, -good]), psf_image(), SCALE, 1e-4)
    assert res.flags[0] == 0 and res.flags[1] & FLAG_NONPOSITIVE_FLUX
    assert np.isnan(res.g1[1]) and np.isfinite(res.g1[0])
    faint = stamp(0.3, 0.1, 0.0, flux=1.0)
    faint = faint - (faint.sum() + 0.2) / faint.size  # the total of the stamp is negative
    res = HSMEstimator("REGAUSS").measure(faint[None], psf_image(), SCALE, 1e-4)
    assert faint.sum() < 0 and res.flags[0] == 0, "the weighted flux decides, not the noisy total"

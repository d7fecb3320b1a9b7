"""Cramer-Rao bound: analytic round-Gaussian limit, autodiff vs GalSim differences, scaling."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from shearbridge.config import SimConfig
from shearbridge.stats.crlb import (
    crlb_for_dataset,
    crlb_sigma,
    fisher_matrix,
    fisher_matrix_galsim,
    round_gaussian_sigma_g,
)
from shearbridge.estimators.render import Renderer

PSF_SIGMA = 0.25


@pytest.mark.parametrize("size", [0.2, 0.4])
def test_round_gaussian_limit_fine_pixels(size):
    """sigma(g) -> 1/(nu R) with flux, centroid and size marginalised (fine pixels).

    The formula is the continuum limit; the pixel adds ~p^2/12 to the PSF variance,
    so the relative deviation is first order in eps = p^2 / (12 s_obs^2).
    """
    scale, stamp = 0.02, 201  # s_obs <= 0.47" sits well inside the 4" stamp
    rend = Renderer.gaussian_psf(PSF_SIGMA, scale, stamp)
    theta = np.array([2.0, 0.0, 0.0, size, 0.0, 0.0])
    fisher = fisher_matrix(theta, rend, noise_sigma=1e-3)
    sig = crlb_sigma(fisher)[0]
    bound = round_gaussian_sigma_g(rend.render(theta), size, PSF_SIGMA, 1e-3)
    eps = scale**2 / (12 * (size**2 + PSF_SIGMA**2))
    assert abs(sig[4] / bound - 1) < 2 * eps
    assert abs(sig[5] / bound - 1) < 2 * eps
    # g is uncorrelated with flux, size and centroid at g = 0: marginal = conditional
    np.testing.assert_allclose(sig[4], 1 / np.sqrt(fisher[0, 4, 4]), rtol=1e-10)


@pytest.mark.parametrize("size", [0.2, 0.4])
def test_round_gaussian_limit_shearnet_pixels_with_pixel_variance(size):
    """At 0.141" pixels, adding p^2/12 to the PSF variance leaves an O(eps^2) residual."""
    scale, stamp = 0.141, 53
    rend = Renderer.gaussian_psf(PSF_SIGMA, scale, stamp)
    theta = np.array([2.0, 0.0, 0.0, size, 0.0, 0.0])
    sig = crlb_sigma(fisher_matrix(theta, rend, noise_sigma=1e-3))[0]
    psf_eff = np.sqrt(PSF_SIGMA**2 + scale**2 / 12)
    bound = round_gaussian_sigma_g(rend.render(theta), size, psf_eff, 1e-3)
    eps = scale**2 / (12 * (size**2 + PSF_SIGMA**2))
    assert abs(sig[4] / bound - 1) < eps**2


THETAS = np.array([[3.0, 0.1, -0.15, 0.3, 0.2, -0.1], [1.5, 0.05, 0.0, 0.6, -0.4, 0.3]])


def test_autodiff_analytic_and_galsim_differences_agree():
    rend = Renderer.gaussian_psf(PSF_SIGMA, 0.141, 53)
    f_auto = fisher_matrix(THETAS, rend, method="autodiff")
    f_anal = fisher_matrix(THETAS, rend, method="analytic")
    np.testing.assert_allclose(f_anal, f_auto, rtol=1e-10, atol=1e-12 * np.abs(f_auto).max())
    gsp = galsim.GSParams(
        folding_threshold=1e-6, maxk_threshold=1e-8, kvalue_accuracy=1e-10, xvalue_accuracy=1e-10
    )
    psf = galsim.Gaussian(sigma=PSF_SIGMA, gsparams=gsp)
    step = 1e-3
    for i, theta in enumerate(THETAS):
        f_gs = fisher_matrix_galsim(theta, psf, 0.141, 53, rel_step=step, gsparams=gsp)
        # central differences: relative truncation error O(step^2) (times O(1)-O(10)
        # third-derivative factors for these parameters)
        np.testing.assert_allclose(
            crlb_sigma(f_gs[None])[0], crlb_sigma(f_auto[i : i + 1])[0], rtol=100 * step**2
        )


def test_crlb_for_dataset_scales_with_noise_and_bounds_conditional():
    rng = np.random.default_rng(0)
    n = 16
    labels = {
        "g1": rng.normal(0, 0.26, n).clip(-0.7, 0.7),
        "g2": rng.normal(0, 0.26, n).clip(-0.7, 0.7),
        "size_arcsec": rng.uniform(0.15, 0.8, n),
        "flux": rng.uniform(1, 5, n),
        "dx_arcsec": rng.uniform(-0.2, 0.2, n),
        "dy_arcsec": rng.uniform(-0.2, 0.2, n),
    }
    sim = SimConfig()
    lo = crlb_for_dataset(labels, sim, 1e-5)
    hi = crlb_for_dataset(labels, sim, 1e-3)
    np.testing.assert_allclose(hi["sigma_g1"], 100 * lo["sigma_g1"], rtol=1e-12)
    # marginalising over nuisance parameters can only raise the bound
    theta = np.stack(
        [labels[k] for k in ("flux", "dx_arcsec", "dy_arcsec", "size_arcsec", "g1", "g2")], axis=1
    )
    rend = Renderer.gaussian_psf(sim.psf_sigma_arcsec, sim.pixel_scale_arcsec, sim.stamp_size_px)
    fis = fisher_matrix(theta, rend, noise_sigma=1e-5)
    assert np.all(lo["sigma_g1"] >= 1 / np.sqrt(fis[:, 4, 4]) * (1 - 1e-12))
    # the Moffat PSF path runs through a GalSim PSF image
    moff = crlb_for_dataset(labels, SimConfig(psf="moffat"), 1e-5)
    assert np.all(np.isfinite(moff["sigma_g1"])) and np.all(moff["sigma_g1"] > 0)


def test_crlb_for_dataset_rejects_bad_input():
    labels = {"g1": [0.1], "g2": [0.0], "size_arcsec": [0.3], "flux": [2.0], "dx_arcsec": [0.0]}
    with pytest.raises(ValueError, match="dy_arcsec"):
        crlb_for_dataset(labels, SimConfig(), 1e-5)
    labels["dy_arcsec"] = [0.0]
    with pytest.raises(ValueError, match="sersic"):
        crlb_for_dataset(labels, SimConfig(galaxy="sersic"), 1e-5)
    with pytest.raises(ValueError, match="noise_sigma"):
        crlb_for_dataset(labels, SimConfig(), -1.0)

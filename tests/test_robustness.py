"""Robustness study: finite-difference GalSim CRLB, one method on one set, the summary."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shearbridge.steps import robustness as rb
from shearbridge.sim import stamps as simmod
from shearbridge.config import Profile, SimConfig, noise_tag
from shearbridge.sim.datasets import generate_dataset
from shearbridge.stats.crlb import crlb_for_dataset
from shearbridge.stats.crlb_fd import crlb_fd, fisher_fd
from shearbridge.summaries.robustness import robustness_summary

# Central differences have an O(step^2) truncation error (step 1e-3: 1e-6 times
# third-derivative factors of O(1)-O(100), as in tests/test_crlb.py); GalSim's rendering
# accuracy (GSPARAMS, < 1e-8 absolute per pixel) divided by the step adds <~1e-5 of the
# derivatives. Measured agreement with the JAX renderer: 3e-7 (Gaussian and exponential).
RTOL_FD = 100 * 1e-3**2


def _labels(sim: SimConfig, n: int, seed: int) -> dict[str, np.ndarray]:
    return simmod.draw_population(sim, n, np.random.default_rng(seed))


@pytest.mark.parametrize("galaxy", ["gauss", "exp"])
def test_finite_difference_crlb_matches_autodiff(galaxy):
    sim = dataclasses.replace(SimConfig(), galaxy=galaxy)
    labels = _labels(sim, 4, 7)
    fd = crlb_fd(sim, labels, range(4))
    auto = crlb_for_dataset(labels, sim, 1.0)
    for k, name in ((4, "sigma_g1"), (5, "sigma_g2")):
        np.testing.assert_allclose(fd[:, k], auto[name], rtol=RTOL_FD, err_msg=f"{galaxy} {name}")


def test_finite_difference_fisher_scales_with_noise():
    sim = SimConfig()
    row = {k: v[0] for k, v in _labels(sim, 1, 2).items()}
    f1, f3 = fisher_fd(sim, row, 1.0), fisher_fd(sim, row, 3.0)
    np.testing.assert_allclose(f3, f1 / 9.0, rtol=1e-12)


def test_unknown_method_or_dataset_raises_one_clear_error():
    profile = Profile(name="tiny")
    with pytest.raises(rb.RobustnessError, match="unknown robustness method 'nope'.*shapenet_mix"):
        rb.run_robustness("nope", "test_exp", profile, 1e-5)
    with pytest.raises(
        rb.RobustnessError, match="unknown robustness dataset 'test_blob'.*test_moffat"
    ):
        rb.run_robustness("mlfit", "test_blob", profile, 1e-5)
    assert issubclass(rb.RobustnessError, ValueError)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny profile: test and test_exp sets, FD bounds of 24 galaxies, HSM on both."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SHEARBRIDGE_DATA", str(tmp_path_factory.mktemp("data")))
    profile = Profile(
        name="tiny",
        noise_grid=(1e-4, 1e-3),
        n_train=64,
        n_test=64,
        n_crlb=24,
        n_shear_pairs=8,
        bootstrap=50,
    )
    for name in ("test", "test_exp"):
        generate_dataset(name, profile, workers=1, progress=False)
        rb.compute_fd_crlb(name, profile)
    results = {
        (d, s): rb.run_robustness("hsm_regauss", d, profile, s)
        for d in ("test", "test_exp")
        for s in profile.noise_grid
    }
    yield profile, results
    mp.undo()


def test_run_robustness_writes_rmse_and_ratio(tiny_run):
    profile, results = tiny_run
    for (dataset, sigma), r in results.items():
        assert r["n"] == rb.n_galaxies(profile, 256) == 24
        assert rb.result_path(profile, "hsm_regauss", dataset, sigma).exists()
        assert r["ratio"] == pytest.approx(r["rmse_g"] / r["rms_crlb"])
        # no estimator beats the bound by more than its error (REGAUSS is ~unbiased here)
        assert r["ratio"] > 1 - 3 * r["ratio_err"], r
        # the bound is linear in the noise: the stored unit-noise bound times sigma
        assert r["rms_crlb"] / sigma == pytest.approx(results[(dataset, 1e-4)]["rms_crlb"] / 1e-4)


def test_summary_degradation_and_missing_results(tiny_run):
    profile, results = tiny_run
    tags = [noise_tag(s) for s in profile.noise_grid]
    out = robustness_summary(profile, tags, methods=["hsm_regauss"], datasets=["test", "test_exp"])
    for tag, sigma in zip(tags, profile.noise_grid):
        per = out["noise"][tag]["methods"]["hsm_regauss"]
        q = results[("test_exp", sigma)]["ratio"] / results[("test", sigma)]["ratio"]
        assert per["degradation"]["test_exp"]["factor"] == pytest.approx(q)
        assert per["worst"]["dataset"] == "test_exp"
    with pytest.raises(FileNotFoundError, match="robustness --method mlfit"):
        robustness_summary(profile, tags, methods=["mlfit"], datasets=["test", "test_exp"])

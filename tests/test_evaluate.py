"""Shear metrics recover a known linear bias within their bootstrap errors; results are written."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shearbridge.config import TrainConfig, get_profile
from shearbridge.config.experiments import ExperimentConfig
from shearbridge.steps.evaluate import evaluate_run, result_path, shear_metrics
from shearbridge.models import get_model
from shearbridge.models import save_model

K_SIGMA = 4.0  # statistical tolerance, in units of the estimate's own standard error


def biased_estimates(n: int, m, c, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 0.26, (n, 2))
    pred = (1.0 + np.asarray(m)) * true + np.asarray(c) + rng.normal(0.0, noise, (n, 2))
    return pred, true


@pytest.mark.pipeline
def test_recovers_known_slope_and_offset_within_k_sigma():
    m, c, noise, n = np.array([0.05, -0.03]), np.array([2e-3, -1e-3]), 0.02, 4000
    pred, true = biased_estimates(n, m, c, noise, seed=1)
    out = shear_metrics(pred, true, np.random.default_rng(2), n_boot=400)
    for j, name in enumerate(("g1", "g2")):
        r = out[name]
        assert abs(r["m"] - m[j]) < K_SIGMA * r["m_err"], (name, r["m"], r["m_err"])
        assert abs(r["c"] - c[j]) < K_SIGMA * r["c_err"], (name, r["c"], r["c_err"])
        np.testing.assert_allclose(r["slope"], 1.0 + r["m"], rtol=1e-12)
        # bootstrap error of the OLS slope vs its analytic value noise / (sqrt(N) std(true))
        analytic = noise / (np.sqrt(n) * true[:, j].std())
        np.testing.assert_allclose(
            r["m_err"], analytic, rtol=0.2, err_msg=f"{name}: bootstrap vs analytic"
        )
        # true MSE (not half): m^2 var(g) + c^2 + noise^2
        expected_mse = m[j] ** 2 * true[:, j].var() + c[j] ** 2 + noise**2
        assert abs(r["mse"] - expected_mse) < K_SIGMA * r["mse_err"], (name, r["mse"], expected_mse)
        np.testing.assert_allclose(r["rmse"], np.sqrt(r["mse"]), rtol=1e-12)
        np.testing.assert_allclose(r["bias"], np.mean(pred[:, j] - true[:, j]), rtol=1e-12)
    np.testing.assert_allclose(
        out["rmse_g"], np.sqrt((out["g1"]["mse"] + out["g2"]["mse"]) / 2), rtol=1e-12
    )
    assert out["rmse_g_err"] > 0 and out["n"] == n and out["n_boot"] == 400


def test_perfect_estimates_have_zero_error():
    true = np.random.default_rng(3).normal(0, 0.26, (50, 2))
    out = shear_metrics(true.copy(), true, np.random.default_rng(4), n_boot=10)
    for name in ("g1", "g2"):
        assert out[name]["mse"] == 0.0 and out[name]["bias"] == 0.0
        np.testing.assert_allclose([out[name]["m"], out[name]["c"]], [0.0, 0.0], atol=1e-12)


def test_bootstrap_is_reproducible_from_the_generator():
    pred, true = biased_estimates(300, 0.0, 0.0, 0.01, seed=5)
    a = shear_metrics(pred, true, np.random.default_rng(6), n_boot=30, chunk=7)
    b = shear_metrics(pred, true, np.random.default_rng(6), n_boot=30, chunk=30)
    assert a == b


@pytest.mark.parametrize(
    "pred, true, n_boot, match",
    [
        (np.zeros((10, 3)), np.zeros((10, 3)), 10, r"shape \(N, 2\)"),
        (np.zeros((10, 2)), np.zeros((9, 2)), 10, r"shape \(N, 2\)"),
        (np.full((10, 2), np.nan), np.ones((10, 2)), 10, "NaN"),
        (np.zeros((10, 2)), np.ones((10, 2)), 10, "constant"),
        (np.zeros((10, 2)), np.arange(20.0).reshape(10, 2), 1, "n_boot"),
    ],
)
def test_misuse_raises(pred, true, n_boot, match):
    with pytest.raises(ValueError, match=match):
        shear_metrics(pred, true, np.random.default_rng(0), n_boot)


class RandomStamps:
    """Dataset-like: noise stamps with known labels (the model need not be any good)."""

    def __init__(self, name: str, n: int, size: int, seed: int):
        rng = np.random.default_rng(seed)
        self.name = name
        self.clean = rng.normal(size=(n, size, size)).astype(np.float32)
        self.noise = rng.standard_normal((n, size, size)).astype(np.float32)
        self.labels = rng.normal(size=(n, 4))

    def images(self, noise_sigma):
        return self.clean + np.float32(noise_sigma) * self.noise

    def targets(self, n_outputs):
        return self.labels[:, :n_outputs].astype(np.float32)

    def __len__(self):
        return len(self.clean)


@pytest.mark.pipeline
def test_evaluate_run_writes_results(tmp_path, monkeypatch):
    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path / "data"))
    profile = dataclasses.replace(get_profile("quick"), bootstrap=20)
    exp = ExperimentConfig(
        name="evaltest", train=TrainConfig(n_outputs=4), profile=profile, noise_sigma=1e-3
    )
    model = get_model("enhanced", 4)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 13, 13)))["params"]
    mean, std = np.array([0.0, 0.0, 0.5, 3.0]), np.array([0.26, 0.26, 0.3, 1.0])
    workdir = tmp_path / "run"
    meta = {"model": "enhanced", "n_outputs": 4, "experiment": {"name": "evaltest"}, "epoch": 7}
    save_model(workdir / "model.msgpack", params, mean, std, meta)

    test = RandomStamps("test", 40, 13, seed=1)
    result = evaluate_run(workdir, exp, test)
    path = tmp_path / "data" / "quick" / "results" / "evaltest" / "noise1e-03.json"
    assert result["path"] == str(path) == str(result_path(exp, "test"))
    on_disk = json.loads(path.read_text())
    assert on_disk["shear"]["n_boot"] == 20 and on_disk["model_epoch"] == 7
    raw = np.asarray(model.apply({"params": params}, test.images(1e-3)), np.float64) * std + mean
    np.testing.assert_allclose(
        on_disk["targets"]["flux"]["mse"], np.mean((raw[:, 3] - test.labels[:, 3]) ** 2), rtol=1e-5
    )
    np.testing.assert_allclose(
        on_disk["shear"]["g1"]["mse"], on_disk["targets"]["g1"]["mse"], rtol=1e-12
    )
    saved = np.load(path.with_name("noise1e-03_pred.npz"))
    np.testing.assert_allclose(saved["pred"], raw, rtol=1e-5, atol=1e-6)

    other = evaluate_run(
        workdir, exp, RandomStamps("test_exp", 40, 13, seed=2)
    )  # same shape: no recompile
    assert other["path"].endswith("noise1e-03_test_exp.json")
    with pytest.raises(ValueError, match="not 'other'"):
        evaluate_run(workdir, dataclasses.replace(exp, name="other"), test)
    with pytest.raises(FileNotFoundError, match="has training finished"):
        evaluate_run(tmp_path / "nowhere", exp, test)
    # a model that says it was trained at another noise level is refused
    save_model(
        tmp_path / "run14" / "model.msgpack",
        params,
        mean,
        std,
        meta | {"experiment": {"name": "evaltest", "noise_sigma": 1e-3}},
    )
    with pytest.raises(ValueError, match="trained at noise 0.001, not 1.4e-05"):
        evaluate_run(tmp_path / "run14", dataclasses.replace(exp, noise_sigma=1.4e-5), test)

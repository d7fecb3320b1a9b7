"""The real training path, tiny: loss decreases, resume is exact, best parameters are kept."""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from dataclasses import dataclass

import numpy as np
import pytest
from flax import serialization

from shearbridge.config import ConfigError, SimConfig, TrainConfig, get_profile
from shearbridge.config.experiments import ExperimentConfig
from shearbridge.models import MODEL_FILE, load_trained, predict
from shearbridge.train.checkpoint import CHECKPOINT
from shearbridge.train.data import label_stats, split_indices
from shearbridge.train.loop import train_and_evaluate
from shearbridge.train.metrics import LOSSES, METRICS
from shearbridge.train.optim import make_optimizer

PIXEL_ARCSEC = 0.141
PSF_SIGMA_ARCSEC = 0.25


@dataclass
class Stamps:
    """A minimal stand-in for ``shearbridge.sim.datasets.Dataset`` (same methods)."""

    name: str
    clean: np.ndarray
    noise: np.ndarray
    labels: dict
    sim: Any = None  # the simulation record (SimConfig): the PSF a network is told

    def images(self, noise_sigma: float) -> np.ndarray:
        return (self.clean + np.float32(noise_sigma) * self.noise).astype(np.float32)

    def targets(self, n_outputs: int) -> np.ndarray:
        cols = ("g1", "g2", "size_arcsec", "flux")[:n_outputs]
        return np.stack([self.labels[c] for c in cols], axis=1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.clean)


def gaussian_stamps(n: int, size: int, seed: int) -> Stamps:
    """Sheared elliptical Gaussians convolved with a Gaussian PSF, drawn analytically.

    A Gaussian of sigma s sheared by g has covariance s^2 A A^T with
    A = [[1+g1, g2], [g2, 1-g1]] / sqrt(1-|g|^2) (det A = 1, flux kept);
    the PSF adds sigma_psf^2 to the diagonal. Pixel values are the profile at
    pixel centres times the pixel area.
    """
    rng = np.random.default_rng(seed)
    g = rng.normal(0.0, 0.26, (n, 2))
    g /= np.maximum(1.0, np.hypot(g[:, 0], g[:, 1]) / 0.7)[:, None]
    s = 0.14 + np.abs(rng.normal(0.0, 0.5, n))
    flux = rng.uniform(1.0, 5.0, n)
    g1, g2 = g.T
    k = 1.0 / np.sqrt(1.0 - g1**2 - g2**2)
    a11, a12, a22 = k * (1 + g1), k * g2, k * (1 - g1)
    c11 = s**2 * (a11**2 + a12**2) + PSF_SIGMA_ARCSEC**2
    c12 = s**2 * (a11 * a12 + a12 * a22)
    c22 = s**2 * (a12**2 + a22**2) + PSF_SIGMA_ARCSEC**2
    det = c11 * c22 - c12**2
    x = (np.arange(size) - (size - 1) / 2) * PIXEL_ARCSEC
    X, Y = np.meshgrid(x, x, indexing="xy")
    c11, c12, c22, det = (v[:, None, None] for v in (c11, c12, c22, det))
    q = (c22 * X**2 - 2 * c12 * X * Y + c11 * Y**2) / det
    img = flux[:, None, None] * PIXEL_ARCSEC**2 / (2 * np.pi * np.sqrt(det)) * np.exp(-0.5 * q)
    noise = rng.standard_normal(img.shape).astype(np.float32)
    labels = {"g1": g1, "g2": g2, "size_arcsec": s, "flux": flux}
    sim = SimConfig(
        psf_sigma_arcsec=PSF_SIGMA_ARCSEC, pixel_scale_arcsec=PIXEL_ARCSEC, stamp_size_px=size
    )
    return Stamps(f"synthetic{seed}", img.astype(np.float32), noise, labels, sim)


def experiment(name: str = "tiny", **train_overrides) -> ExperimentConfig:
    profile = dataclasses.replace(get_profile("quick"), val_fraction=0.25, epochs=2, patience=5)
    train = dataclasses.replace(TrainConfig(batch_size=16, seed=3), **train_overrides)
    return ExperimentConfig(name=name, train=train, profile=profile, noise_sigma=1e-5)


def read_params(path):
    return serialization.msgpack_restore(path.read_bytes())


def assert_trees_equal(a, b, what):
    import jax

    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb), what
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=what)


# ----------------------------------------------------------------- pieces


def test_split_is_a_seeded_shuffled_partition():
    tr, va = split_indices(100, 0.2, seed=7)
    assert len(va) == 20 and len(tr) == 80
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(100))
    tr2, va2 = split_indices(100, 0.2, seed=7)
    np.testing.assert_array_equal(va, va2)
    _, va3 = split_indices(100, 0.2, seed=8)
    assert not np.array_equal(va, va3)
    assert not np.array_equal(va, np.arange(80, 100)), (
        "validation must not be the last 20% (ShearNet's split)"
    )


def test_label_stats_standardise_or_not():
    t = (
        np.random.default_rng(0)
        .normal([0, 0, 0.5, 3], [0.26, 0.26, 0.3, 1.2], size=(500, 4))
        .astype(np.float32)
    )
    mean, std = label_stats(t, True)
    z = (t - mean) / std
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, rtol=1e-5)
    mean, std = label_stats(t, False)
    np.testing.assert_array_equal(mean, 0)
    np.testing.assert_array_equal(std, 1)


def test_cosine_schedule_with_and_without_warmup():
    _, sched = make_optimizer(TrainConfig(learning_rate=1e-3), steps_per_epoch=10, epochs=4)
    np.testing.assert_allclose([sched(0), sched(20), sched(40)], [1e-3, 5e-4, 0.0], atol=1e-9)
    _, sched = make_optimizer(
        TrainConfig(learning_rate=1e-3, warmup_epochs=1.0), steps_per_epoch=10, epochs=4
    )
    np.testing.assert_allclose([sched(0), sched(10), sched(40)], [0.0, 1e-3, 0.0], atol=1e-9)


@pytest.mark.pipeline
def test_predict_pads_batches_and_unstandardises():
    import jax
    import jax.numpy as jnp

    from shearbridge.models import get_model

    model = get_model("enhanced", 2)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 13, 13)))["params"]
    x = np.random.default_rng(1).normal(size=(7, 13, 13)).astype(np.float32)
    raw = np.asarray(model.apply({"params": params}, x), np.float64)
    mean, std = np.array([0.1, -0.2]), np.array([2.0, 0.5])
    out = predict(
        params, model, x, batch_size=3, label_mean=mean, label_std=std
    )  # 3 + 3 + 1 (padded)
    np.testing.assert_allclose(out, raw * std + mean, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        predict(params, model, np.full((2, 13, 13), np.nan, np.float32), 2)


# ----------------------------------------------------------------- training


@pytest.mark.pipeline
def test_tiny_real_training_lowers_the_loss(tmp_path):
    """256 real-size (53x53) stamps, 2 epochs: the validation loss falls below its value at init."""
    train, test = gaussian_stamps(256, 53, seed=1), gaussian_stamps(64, 53, seed=2)
    exp = experiment()
    metrics = train_and_evaluate(exp, tmp_path, train_data=train, test_data=test, progress=False)
    log = json.loads((tmp_path / LOSSES).read_text())
    val = [e["val_loss"] for e in log["epochs"]]
    assert log["epochs"][0]["epoch"] == 0 and len(val) == 3
    assert min(val[1:]) < val[0], f"validation loss did not fall: {val}"
    assert [e["sample_steps"] for e in log["epochs"]] == [
        0,
        192,
        384,
    ]  # 192 train objects, batch 16
    assert log["n_val"] == 64 and log["n_train"] == 192
    # the written model reproduces the reported test metrics
    trained = load_trained(tmp_path)
    pred = trained.predict(test.images(exp.noise_sigma), batch_size=32)
    mse_g1 = np.mean((pred[:, 0] - test.labels["g1"]) ** 2)
    np.testing.assert_allclose(mse_g1, metrics["test"]["g1"]["mse"], rtol=1e-6)
    np.testing.assert_allclose(
        metrics["rmse_g"] ** 2, (metrics["test"]["g1"]["mse"] + metrics["test"]["g2"]["mse"]) / 2
    )
    assert metrics["n_params"] == 697668
    assert json.loads((tmp_path / METRICS).read_text())["best_epoch"] == metrics["best_epoch"]


@pytest.mark.pipeline
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    train, test = gaussian_stamps(160, 21, seed=4), gaussian_stamps(32, 21, seed=5)
    exp = dataclasses.replace(experiment(epochs=3, warmup_epochs=0.5), save_every=1)
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    train_and_evaluate(exp, straight, train_data=train, test_data=test, progress=False)
    partial = train_and_evaluate(
        exp, broken, train_data=train, test_data=test, stop_after_epoch=1, progress=False
    )
    assert partial == {"completed": False, "epoch": 1, "best_epoch": 1}
    assert not (broken / MODEL_FILE).exists()
    train_and_evaluate(
        exp, broken, train_data=train, test_data=test, progress=False
    )  # a fresh call resumes

    a, b = read_params(straight / CHECKPOINT), read_params(broken / CHECKPOINT)
    for key in ("params", "opt_state", "best_params"):
        assert_trees_equal(a[key], b[key], f"{key} differ after resume")
    assert a["epoch"] == b["epoch"] == 3

    def hist(ckpt):
        return [
            (e["epoch"], e["train_loss"], e["val_loss"], e["lr"])
            for e in json.loads(ckpt["history"])
        ]

    assert hist(a) == hist(b)
    assert_trees_equal(
        read_params(straight / MODEL_FILE)["params"],
        read_params(broken / MODEL_FILE)["params"],
        "best",
    )
    # the kept model is the snapshot of the best epoch
    best = json.loads((straight / METRICS).read_text())["best_epoch"]
    snap = read_params(straight / f"params_epoch{best:03d}.msgpack")["params"]
    assert_trees_equal(
        read_params(straight / MODEL_FILE)["params"], snap, "model.msgpack is not the best epoch"
    )


@pytest.mark.pipeline
def test_early_stopping_keeps_the_best_parameters(tmp_path):
    """A learning rate far too high makes the validation loss wander; patience 1 stops the run."""
    train, test = gaussian_stamps(160, 21, seed=6), gaussian_stamps(32, 21, seed=7)
    exp = dataclasses.replace(experiment(epochs=8, patience=1, learning_rate=0.05), save_every=1)
    metrics = train_and_evaluate(exp, tmp_path, train_data=train, test_data=test, progress=False)
    val = {
        e["epoch"]: e["val_loss"] for e in json.loads((tmp_path / LOSSES).read_text())["epochs"][1:]
    }
    finite = {k: v for k, v in val.items() if v is not None}
    assert metrics["best_epoch"] == min(finite, key=finite.get)
    assert metrics["stopped_early"], f"expected an early stop with patience 1: {val}"
    assert metrics["epochs_run"] == metrics["best_epoch"] + 1  # patience 1
    snap = read_params(tmp_path / f"params_epoch{metrics['best_epoch']:03d}.msgpack")["params"]
    assert_trees_equal(
        read_params(tmp_path / MODEL_FILE)["params"], snap, "kept params are not the best epoch's"
    )


@pytest.mark.pipeline
def test_resuming_a_different_run_is_refused(tmp_path):
    train = gaussian_stamps(64, 13, seed=8)
    train_and_evaluate(experiment(), tmp_path, train_data=train, stop_after_epoch=1, progress=False)
    with pytest.raises(ValueError, match="different run"):
        train_and_evaluate(
            experiment(learning_rate=3e-4), tmp_path, train_data=train, progress=False
        )


def test_misuse_raises_named_errors(tmp_path):
    train = gaussian_stamps(64, 13, seed=9)
    with pytest.raises(ConfigError, match="batch_size"):
        train_and_evaluate(
            experiment(batch_size=128), tmp_path / "a", train_data=train, progress=False
        )
    bad = dataclasses.replace(train, clean=train.clean.copy())
    bad.clean[3, 5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_and_evaluate(experiment(), tmp_path / "b", train_data=bad, progress=False)


@pytest.mark.pipeline
def test_trains_and_evaluates_on_cached_galsim_datasets(tmp_path, monkeypatch):
    """The default path: datasets named by the config, loaded from the profile's cache."""
    from shearbridge.sim import datasets as data
    from shearbridge.steps.evaluate import evaluate_run

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path / "data"))
    # sizes as in experiment() and the 256/64 stamps above, so the compiled step is reused
    base = experiment("tinyrun")
    profile = dataclasses.replace(base.profile, name="tiny", n_train=256, n_test=64, n_crlb=8)
    for name in ("train", "test"):
        data.generate_dataset(name, profile=profile, workers=1, progress=False)
    exp = dataclasses.replace(base, profile=profile, noise_sigma=1e-3)
    metrics = train_and_evaluate(exp, tmp_path / "run", progress=False)
    assert metrics["n_test"] == 64 and metrics["epochs_run"] == 2
    result = evaluate_run(tmp_path / "run", exp)
    assert result["path"].endswith("tiny/results/tinyrun/noise1e-03.json")
    np.testing.assert_allclose(
        result["targets"]["g1"]["mse"], metrics["test"]["g1"]["mse"], rtol=1e-6
    )


@pytest.mark.pipeline
def test_max_objects_trains_on_the_first_objects_only(tmp_path):
    """The same run on the first 128 of 256 objects equals a run on a 128-object dataset."""
    train, test = gaussian_stamps(256, 21, seed=1), gaussian_stamps(32, 21, seed=2)
    first = Stamps(
        "first128",
        train.clean[:128],
        train.noise[:128],
        {k: v[:128] for k, v in train.labels.items()},
    )
    exp = experiment(epochs=1, max_objects=128)
    a = train_and_evaluate(exp, tmp_path / "a", train_data=train, test_data=test, progress=False)
    log = json.loads((tmp_path / "a" / LOSSES).read_text())
    assert log["n_train"] + log["n_val"] == 128 and log["n_train"] == 96
    b = train_and_evaluate(exp, tmp_path / "b", train_data=first, test_data=test, progress=False)
    assert a["rmse_g"] == b["rmse_g"] and a["sample_steps"] == b["sample_steps"] == 96
    with pytest.raises(ConfigError, match="max_objects"):
        experiment(max_objects=1).validate()


@pytest.mark.pipeline
def test_a_diverging_training_stops_naming_the_epoch_and_publishes_no_model(tmp_path):
    """learning_rate 100 explodes the loss: the run stops at that epoch with a named error."""
    from shearbridge.errors import TrainingDivergedError
    from shearbridge.models import MODEL_FILE

    train, test = gaussian_stamps(128, 53, seed=1), gaussian_stamps(32, 53, seed=2)
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch 1 .*learning rate 100"):
        train_and_evaluate(
            experiment(learning_rate=100.0),
            tmp_path,
            train_data=train,
            test_data=test,
            progress=False,
        )
    assert not (tmp_path / MODEL_FILE).exists() and not (tmp_path / METRICS).exists()
    fresh = tmp_path / "new_run"
    with pytest.raises(TrainingDivergedError):
        train_and_evaluate(
            experiment(learning_rate=100.0), fresh, train_data=train, test_data=test, progress=False
        )
    assert not fresh.exists(), "a failed run leaves no empty run folder"


@pytest.mark.parametrize(
    "field, value",
    [
        ("learning_rate", float("inf")),
        ("learning_rate", float("nan")),
        ("weight_decay", float("inf")),
    ],
)
def test_non_finite_optimiser_settings_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        experiment(**{field: value}).validate()

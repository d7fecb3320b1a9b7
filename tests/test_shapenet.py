"""ShapeNet and its components: each switch does what its docstring says."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shearbridge.models.layers import LayerConfigError
from shearbridge.config import SimConfig
from shearbridge.models import bind_data_kwargs, count_params, get_model
from shearbridge.config.ablation import BASELINE_LIKE
from shearbridge.models.shapenet import (
    MomentPool,
    aperture_flux,
    moment_weight_maps,
)
from shearbridge.train.loop import train_and_evaluate
from shearbridge.train.metrics import LOSSES
from test_train import experiment, gaussian_stamps


def _shapenet(n_outputs, **kwargs):
    """ShapeNet told the default simulation's PSF, as training does (from the data's record)."""
    return get_model("shapenet", n_outputs, **bind_data_kwargs("shapenet", kwargs, SimConfig()))


def _init(model, size=53, seed=0):
    return model.init(jax.random.PRNGKey(seed), jnp.zeros((1, size, size)))["params"]


def _gaussian(size, sigma, e1=0.0, e2=0.0, x0=0.0, y0=0.0, flux=1.0):
    """Elliptical Gaussian with covariance sigma^2 [[1+e1, e2], [e2, 1-e1]] at (x0, y0) px."""
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size] - c
    x, y = x - x0, y - y0
    cov = sigma**2 * np.array([[1 + e1, e2], [e2, 1 - e1]])
    inv = np.linalg.inv(cov)
    q = inv[0, 0] * x**2 + 2 * inv[0, 1] * x * y + inv[1, 1] * y**2
    return flux * np.exp(-0.5 * q) / (2 * np.pi * np.sqrt(np.linalg.det(cov)))


def test_baseline_like_settings_have_enhancedgalaxynn_parameter_count():
    """conv1 160 + conv2 4,640 + dense1 5408*128+128 + out 516 = 697,668 (worked out by hand)."""
    model = _shapenet(4, **BASELINE_LIKE)
    assert count_params(_init(model)) == 16 * 9 + 16 + 32 * 9 * 16 + 32 + 5408 * 128 + 128 + 129 * 4
    base = get_model("enhanced", 4)
    assert count_params(_init(model)) == count_params(_init(base))


@pytest.mark.pipeline
def test_default_model_forward_pass_and_parameter_count():
    """Final model: conv 1->16 (160), conv 16->32 (4,640), head input (1+32)*18 moments
    + 2x7 adaptive-moment features + log-flux = 609, dense 609->128, 128->128, out 128->4,
    and the residual's scales (2 weights x 2) and offsets (2) for (g1, g2)."""
    model = _shapenet(4)
    params = _init(model)
    assert count_params(params) == 160 + 4640 + (609 * 128 + 128) + (128 * 128 + 128) + 516 + 6
    x = jnp.asarray(np.stack([_gaussian(53, 3.0, flux=2.0), _gaussian(53, 2.0, 0.2)]), jnp.float32)
    out = model.apply({"params": params}, x)
    assert out.shape == (2, 4) and bool(jnp.all(jnp.isfinite(out)))
    feats = model.apply({"params": params}, x, return_features=True)
    assert feats["pooled"].shape == (2, 609) and feats["act1"].shape == (2, 53, 53, 16)
    np.testing.assert_array_equal(np.asarray(feats["out"]), np.asarray(out))


def test_moment_pool_measures_the_quadrupole_of_a_gaussian():
    """For an image I = N(0, C), a Gaussian weight of scale s gives
    sum w (x^2 - y^2) / s^2 / sum w = (C'11 - C'22) / s^2 with C' = (C^-1 + 1/s^2)^-1."""
    sigma, e1, e2, s = 2.5, 0.2, -0.1, 3.0
    img = _gaussian(53, sigma, e1, e2)
    feats = np.asarray(MomentPool((s,)).apply({}, jnp.asarray(img[None, ..., None], jnp.float32)))
    w0, wx, wy, wr2, wq1, wq2 = feats[0]
    cov = sigma**2 * np.array([[1 + e1, e2], [e2, 1 - e1]])
    cp = np.linalg.inv(np.linalg.inv(cov) + np.eye(2) / s**2)
    # (x, y) order: x is the last axis, so C[0,0] is the x variance
    np.testing.assert_allclose(wq1 / w0, (cp[0, 0] - cp[1, 1]) / s**2, rtol=1e-4)
    np.testing.assert_allclose(wq2 / w0, 2 * cp[0, 1] / s**2, rtol=1e-4)
    np.testing.assert_allclose(wr2 / w0, (cp[0, 0] + cp[1, 1]) / s**2, rtol=1e-4)
    assert abs(wx / w0) < 1e-6 and abs(wy / w0) < 1e-6


def test_moment_pool_spin2_rows_flip_sign_under_a_quarter_turn():
    """A quarter turn maps (e1, e2) -> (-e1, -e2); the size and monopole rows do not change."""
    img = _gaussian(53, 2.0, 0.3, 0.15, x0=0.4, y0=-0.3)
    pool = MomentPool((1.5, 4.0))
    a = np.asarray(pool.apply({}, jnp.asarray(img[None, ..., None], jnp.float32)))[0].reshape(2, 6)
    rot = np.rot90(img).copy()
    b = np.asarray(pool.apply({}, jnp.asarray(rot[None, ..., None], jnp.float32)))[0].reshape(2, 6)
    np.testing.assert_allclose(b[:, [0, 3]], a[:, [0, 3]], rtol=1e-5)
    np.testing.assert_allclose(b[:, [4, 5]], -a[:, [4, 5]], rtol=1e-4, atol=1e-8)


def test_input_norm_makes_the_prediction_flux_free():
    """With a negligible flux floor, scaling the stamp by 3 changes only the log-flux input:
    the trunk and moment features are identical."""
    model = _shapenet(4, flux_floor=1e-9, moments=False, residual=False)
    params = _init(model)
    x = jnp.asarray(_gaussian(53, 2.5, 0.1, 0.05, flux=1.5)[None], jnp.float32)
    f1 = model.apply({"params": params}, x, return_features=True)
    f3 = model.apply({"params": params}, 3 * x, return_features=True)
    np.testing.assert_allclose(np.asarray(f3["act2"]), np.asarray(f1["act2"]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(f3["pooled"][:, -1] - f1["pooled"][:, -1]), np.log(3.0), rtol=1e-5
    )


def test_aperture_flux_of_a_gaussian_matches_the_analytic_value():
    """sum I exp(-r^2 / 2 a^2) = F a^2 / (a^2 + sigma^2) for a round Gaussian of flux F."""
    img = _gaussian(53, 2.0, flux=3.0)
    got = float(aperture_flux(jnp.asarray(img[None], jnp.float32), 6.0)[0])
    np.testing.assert_allclose(got, 3.0 * 36 / (36 + 4.0), rtol=1e-5)


@pytest.mark.pipeline
def test_no_pooling_keeps_full_resolution_and_blur_pool_halves_it():
    x = jnp.zeros((1, 53, 53))
    for pool, side in (("none", 53), ("blur", 14), ("avg", 13)):
        model = _shapenet(2, pool=pool)
        feats = model.apply({"params": _init(model)}, x, return_features=True)
        assert feats["act1"].shape[1] == 53
        last = feats.get("pool2", feats["act2"])
        assert last.shape[1] == side, pool


def test_bad_settings_raise_named_errors():
    with pytest.raises(LayerConfigError, match="pool"):
        _init(_shapenet(4, pool="max"))
    with pytest.raises(LayerConfigError, match="head"):
        _init(_shapenet(4, head="attention"))
    with pytest.raises(LayerConfigError, match="dilations"):
        _init(_shapenet(4, channels=(8, 8, 8)))
    with pytest.raises(LayerConfigError, match="scales"):
        moment_weight_maps(53, (0.0,))
    with pytest.raises(ValueError, match="stamps"):
        _shapenet(4).apply({"params": _init(_shapenet(4))}, jnp.zeros((2, 53, 40)))


@pytest.mark.pipeline
def test_tiny_real_training_of_shapenet_lowers_the_loss(tmp_path):
    """256 real-size stamps, 2 epochs of the real training loop: the validation loss falls."""
    train, test = gaussian_stamps(256, 53, seed=1), gaussian_stamps(64, 53, seed=2)
    exp = experiment(model="shapenet")
    metrics = train_and_evaluate(exp, tmp_path, train_data=train, test_data=test, progress=False)
    val = [e["val_loss"] for e in json.loads((tmp_path / LOSSES).read_text())["epochs"]]
    assert min(val[1:]) < val[0], f"validation loss did not fall: {val}"
    assert metrics["n_params"] == count_params(_init(_shapenet(4)))


@pytest.mark.pipeline
def test_data_init_solves_the_residual_readout_by_least_squares():
    """Targets that are an exact affine map of the analytic shears give back that map."""
    from shearbridge.models.shapenet import analytic_shears

    stamps = gaussian_stamps(96, 53, seed=4)
    model = _shapenet(2)
    params = _init(model)
    images = stamps.images(1e-5)
    g = np.asarray(analytic_shears(jnp.asarray(images), model.psf_sigma_px), np.float64)
    targets = -0.5 * g[:, 0, :] + 2.0 * g[:, 1, :] + np.array([0.3, -0.1])
    new = model.data_init(params, images, targets)
    # the two analytic shears are nearly collinear: coefficients to 1e-3, predictions to 1e-4
    np.testing.assert_allclose(np.asarray(new["g_scale"]), [[-0.5, -0.5], [2.0, 2.0]], atol=1e-3)
    np.testing.assert_allclose(np.asarray(new["g_offset"]), [0.3, -0.1], atol=1e-4)
    # the correction starts at zero, so the model now predicts the targets
    pred = np.asarray(model.apply({"params": new}, jnp.asarray(images)))
    np.testing.assert_allclose(pred, targets, atol=1e-4)
    assert all(
        np.array_equal(np.asarray(new[k]["kernel"]), np.asarray(params[k]["kernel"]))
        for k in ("conv1", "dense1")
    )


def test_models_built_from_json_lists_are_hashable():
    """Config files give lists; the model must still be hashable so its jit is cached."""
    model = _shapenet(2, channels=[16, 32], dilations=[1, 1])
    hash(model)
    assert model.channels == (16, 32)


def test_the_network_is_told_the_psf_of_its_data_never_a_constant():
    from shearbridge.errors import LayerConfigError

    with pytest.raises(LayerConfigError, match="psf_sigma_px"):
        _init(get_model("shapenet", 2))  # no data, no PSF: refused
    wide = SimConfig(psf_sigma_arcsec=0.30)
    assert bind_data_kwargs("shapenet", {}, wide)["psf_sigma_px"] == pytest.approx(0.30 / 0.141)
    moffat = SimConfig(psf="moffat", psf_fwhm_arcsec=0.7)
    assert bind_data_kwargs("shapenet", {}, moffat)["psf_sigma_px"] == pytest.approx(
        0.7 / 2.3548200450309493 / 0.141
    )
    assert bind_data_kwargs("shapenet", {"psf_sigma_px": 2.0}, wide)["psf_sigma_px"] == 2.0, (
        "an explicit value wins"
    )
    assert bind_data_kwargs("enhanced", {}, wide) == {}, (
        "a model without a PSF input is told nothing"
    )

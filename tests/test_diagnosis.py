"""Per-layer Fisher information (:mod:`shearbridge.diagnosis`) and its probes against known answers.

Stamps are 16x16 (20x20 for EnhancedGalaxyNN) so every check runs in seconds; lengths
in pixels unless a name says arcsec.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from shearbridge.diagnosis import features as Fe
from shearbridge.diagnosis import fisher as D
from shearbridge.diagnosis import information as I
from shearbridge.diagnosis import probes as P
from shearbridge.diagnosis import subpixel as SP
from shearbridge.diagnosis import vision as V
from shearbridge.estimators.render import gaussian_psf_image
from shearbridge.models.enhanced import EnhancedGalaxyNN

S = 16
SCALE = 0.2  # arcsec per pixel
PSF_SIGMA = 0.12  # arcsec = 0.6 px: under-sampled
#: Round-off allowance on a ratio of information matrices built in float64
#: (eps = rcond^2 = 1e-10 regularisation plus ~1e-13 arithmetic).
TOL = 1e-8


def jacobian(size_arcsec: float, g=(0.1, -0.05), offset=(0.03, -0.02), s: int = S) -> np.ndarray:
    psf = gaussian_psf_image(PSF_SIGMA, SCALE, s)
    theta = np.array([[1.0, offset[0], offset[1], size_arcsec, g[0], g[1]]])
    return I.image_jacobian(psf, SCALE, theta)[0]  # (s, s, 6)


def fisher_of(G: np.ndarray) -> np.ndarray:
    g = G.reshape(-1, G.shape[-1])
    return g.T @ g


def identity(params, x, origin):
    return {"id": x}


def linear_invertible(params, x, origin):
    return {"lin": params["A"] @ x.reshape(-1)}


def avg_pool(params, x, origin):
    return {"pool": nn.avg_pool(x[None, :, :, None], (2, 2), strides=(2, 2), padding="VALID")}


def constant(params, x, origin):
    return {"const": jnp.zeros(7, x.dtype) + params["c"]}  # ignores the image


def retained(info: np.ndarray, F_img: np.ndarray, mode: str = "marginal") -> float:
    return float(D.retained_fraction(info, F_img, mode).mean())


@pytest.fixture(scope="module")
def G_small() -> np.ndarray:
    return jacobian(0.1)  # galaxy sigma 0.5 px, PSF sigma 0.6 px


def test_identity_and_invertible_layers_keep_everything(G_small):
    F = fisher_of(G_small)
    x0 = np.zeros((S, S))
    info = D.layer_fisher(identity, {}, x0, G_small)["id"]
    assert_allclose(info, F, rtol=1e-9, atol=1e-9 * np.abs(F).max(), err_msg="identity layer")
    rng = np.random.default_rng(1)
    A = rng.standard_normal((S * S, S * S)) + 4.0 * np.eye(S * S)  # invertible
    info = D.layer_fisher(linear_invertible, {"A": A}, x0, G_small)["lin"]
    # the soft threshold shrinks a direction of singular value s by eps / (s^2 + eps),
    # eps = rcond^2 mean(s^2): the largest loss it may cause
    sv = np.linalg.svd(A, compute_uv=False)
    bias = D.DEFAULT_RCOND**2 * np.mean(sv**2) / np.min(sv) ** 2
    for mode in D.MODES[::2]:
        r = D.retained_fraction(info, F, mode)
        assert np.all((r >= 1.0 - bias - TOL) & (r <= 1.0 + TOL)), (
            f"invertible linear layer, mode {mode}: {r} (allowed loss {bias:.2g})"
        )


def test_average_pooling_loses_information_and_more_for_smaller_galaxies():
    fractions = {}
    for size in (0.1, 0.4):  # sigma 0.5 px (under-sampled) and 2 px
        G = jacobian(size)
        info = D.layer_fisher(avg_pool, {}, np.zeros((S, S)), G)["pool"]
        fractions[size] = retained(info, fisher_of(G), "fixed")
    assert fractions[0.1] < 1.0 - 1e-3, (
        f"2x2 average pooling kept {fractions[0.1]} of the information"
    )
    assert fractions[0.1] < fractions[0.4] <= 1.0 + TOL, (
        f"pooling should hurt an under-sampled galaxy more: {fractions}"
    )


def test_constant_layer_keeps_nothing(G_small):
    info = D.layer_fisher(constant, {"c": jnp.ones(())}, np.zeros((S, S)), G_small)["const"]
    assert np.all(info == 0.0)
    assert np.all(D.retained_fraction(info, fisher_of(G_small), "marginal") == 0.0)


MODEL = EnhancedGalaxyNN(4)
W, ORIGIN = 10, (3, 5)  # a 10x10 window of the 16x16 stamp


@pytest.fixture(scope="module")
def random_params() -> list:
    keys = jax.random.split(jax.random.key(0), 3)
    stacked = jax.jit(jax.vmap(lambda k: MODEL.init(k, jnp.zeros((1, S, S)))["params"]))(keys)
    return [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(len(keys))]


def window_jacobian(size_arcsec: float) -> np.ndarray:
    return jacobian(size_arcsec)[ORIGIN[0] : ORIGIN[0] + W, ORIGIN[1] : ORIGIN[1] + W]


@pytest.mark.pipeline
def test_random_conv_network_never_exceeds_the_image(random_params):
    fn = Fe.enhanced_feature_fn(MODEL, W)
    G = window_jacobian(0.15)
    F = fisher_of(G)
    rng = np.random.default_rng(3)
    for seed, params in enumerate(random_params):
        x0 = 0.05 * rng.standard_normal((S, S))
        info = D.layer_fisher(fn, params, x0, G, ORIGIN, W)
        for layer in Fe.LAYERS:
            for mode in ("marginal", "fixed"):
                r = D.retained_fraction(info[layer], F, mode)
                assert np.all(r <= 1.0 + TOL), f"seed {seed}: {layer} retains {r} > 1 ({mode})"
        # row spaces are nested along the chain, so information never grows
        chain = [retained(info[k], F, "fixed") for k in Fe.LAYERS]
        assert np.all(np.diff(chain) <= TOL), f"information grew along the layers: {chain}"


def test_cropped_features_give_the_full_maps_information(random_params):
    params = random_params[0]

    def full(p, x, o):
        f = MODEL.apply({"params": p}, x[None], return_features=True)
        return {k: f[k] for k in Fe.LAYERS if k != "input"}

    G = window_jacobian(0.2)
    x0 = np.random.default_rng(5).standard_normal((S, S))
    cropped = D.layer_fisher(Fe.enhanced_feature_fn(MODEL, W), params, x0, G, ORIGIN, W)
    reference = D.layer_fisher(full, params, x0, G, ORIGIN, W)
    F = fisher_of(G)
    for layer in reference:
        assert_allclose(
            D.retained_fraction(cropped[layer], F, "fixed"),
            D.retained_fraction(reference[layer], F, "fixed"),
            atol=1e-9,
            err_msg=f"cropping changed the information of {layer}",
        )


SHAPENET_W, SHAPENET_ORIGIN = 6, (5, 5)


def _small_shapenet():
    from shearbridge.models.shapenet import ShapeNet

    # lists, as a saved model's JSON meta gives them (feature_fn_for makes them hashable)
    return ShapeNet(
        2,
        channels=[2, 4],
        dilations=[1, 1],
        pool="blur",
        hidden=8,
        moment_scales_px=[1.0, 2.0],
        psf_sigma_px=PSF_SIGMA / SCALE,
    )


@pytest.fixture(scope="module")
def small_shapenet():
    """A tiny ShapeNet, its parameters and a galaxy's image Jacobian (16x16 stamp)."""
    model = _small_shapenet()
    params = jax.jit(model.init)(jax.random.key(1), jnp.zeros((1, S, S)))["params"]
    return model, params, jacobian(0.2)


def test_shapenet_feature_function_returns_every_listed_layer():
    model = _small_shapenet()
    fn, layers = Fe.feature_fn_for(model, SHAPENET_W)
    assert layers == (
        "input",
        "normed",
        "conv1",
        "act1",
        "pool1",
        "conv2",
        "act2",
        "pool2",
        "moments",
        "pooled",
        "dense1",
        "dense2",
        "out",
    )
    params = jax.eval_shape(model.init, jax.random.key(1), jnp.zeros((1, S, S)))["params"]
    shapes = jax.eval_shape(fn, params, jnp.zeros((S, S)), jnp.asarray(SHAPENET_ORIGIN))
    assert set(shapes) == set(layers)
    assert shapes["input"].shape == (SHAPENET_W, SHAPENET_W) and shapes["out"].shape == (2,)
    with pytest.raises(ValueError, match="no per-layer diagnosis"):
        Fe.feature_fn_for(nn.Dense(3), SHAPENET_W)


@pytest.mark.slow
def test_shapenet_features_are_the_models_with_the_moment_derivative_restored(small_shapenet):
    """Eager forward and JVP passes of ShapeNet (about half a minute on two busy cores)."""
    model, params, G_full = small_shapenet
    fn, layers = Fe.feature_fn_for(model, SHAPENET_W)
    x0 = jnp.asarray(G_full[..., 0], jnp.float32)  # d image / d flux at flux 1: the galaxy itself
    origin = jnp.asarray(SHAPENET_ORIGIN)
    feats = fn(params, x0, origin)
    assert_allclose(feats["out"], model.apply({"params": params}, x0[None])[0], rtol=1e-6)
    # along d image / d g1 the model's own moments do not move (stop-gradient),
    # the diagnosed ones do
    dx = jnp.asarray(G_full[..., 4], jnp.float32)
    own = jax.jvp(
        lambda x: model.apply({"params": params}, x[None], return_features=True)["moments"],
        (x0,),
        (dx,),
    )[1]
    diag = jax.jvp(lambda x: fn(params, x, origin)["moments"], (x0,), (dx,))[1]
    assert np.all(np.asarray(own) == 0.0)
    assert abs(float(diag[0])) > 0.1, f"d g1_moments / d g1 = {float(diag[0])}"


@pytest.mark.slow
def test_shapenet_layers_never_exceed_the_image(small_shapenet):
    """Compiling the ShapeNet Jacobians in float64 takes about a minute on two busy cores."""
    model, params, G_full = small_shapenet
    w, (r0, c0) = SHAPENET_W, SHAPENET_ORIGIN
    fn, layers = Fe.feature_fn_for(model, w)
    G = G_full[r0 : r0 + w, c0 : c0 + w]
    F = fisher_of(G)
    info = D.layer_fisher(fn, params, G_full[..., 0], G, (r0, c0), w)
    assert_allclose(D.retained_fraction(info["input"], F, "fixed"), 1.0, atol=TOL)
    for layer in layers:
        for mode in ("marginal", "fixed"):
            r = D.retained_fraction(info[layer], F, mode)
            assert np.all(r <= 1.0 + TOL), f"{layer} retains {r} > 1 ({mode})"
    for layer in (
        "moments",
        "out",
    ):  # the residual read-out carries the analytic shear's information
        assert np.all(D.retained_fraction(info[layer], F, "fixed") > 0.0), f"{layer} blind to shear"


def test_shear_information_modes_match_matrix_inverses():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((9, 6))
    F = a.T @ a  # generic positive definite
    eff = D.shear_information(F, "marginal")
    assert_allclose(eff, 1.0 / np.diag(np.linalg.inv(F))[4:], rtol=1e-10)
    eff_fixed = D.shear_information(F, "fixed")
    assert_allclose(eff_fixed, 1.0 / np.diag(np.linalg.inv(F[4:, 4:])), rtol=1e-10)
    prec = np.array([2.0, 3.0, 4.0, 5.0, 0.0, 0.0])
    eff_prior = D.shear_information(F, "prior", prior_precision=prec)
    assert_allclose(eff_prior, 1.0 / np.diag(np.linalg.inv(F + np.diag(prec)))[4:], rtol=1e-10)
    assert np.all(eff <= eff_prior) and np.all(eff_prior <= eff_fixed + 1e-12)
    with pytest.raises(ValueError, match="mode"):
        D.shear_information(F, "bogus")


def test_a_four_output_layer_carries_no_six_parameter_information():
    # 6 parameters seen through 4 numbers: g1 is confounded with the nuisances.
    rng = np.random.default_rng(2)
    m = rng.standard_normal((4, 6))
    assert_allclose(D.shear_information(m.T @ m, "marginal"), 0.0, atol=1e-9)


def test_window_capture_is_a_fraction_and_full_windows_capture_all(G_small):
    cap = I.window_capture(G_small, (0, 0), S)
    assert_allclose(list(cap.values()), 1.0, rtol=1e-12)
    part = I.window_capture(G_small, (4, 4), 6)
    assert all(0.0 < v < 1.0 for v in part.values())


def test_galaxy_window_is_centred_and_inside():
    theta = np.array([1.0, 0.141 * 3.2, -0.141 * 1.6, 0.3, 0.0, 0.0])  # x +3.2 px, y -1.6 px
    assert I.galaxy_window(theta, 53, 0.141, 21) == (26 - 2 - 10, 26 + 3 - 10)
    far = np.array([1.0, 10.0, -10.0, 0.3, 0.0, 0.0])
    assert I.galaxy_window(far, 53, 0.141, 21) == (0, 32)


def test_layer_fisher_rejects_a_window_off_the_stamp(G_small):
    with pytest.raises(ValueError, match="does not fit"):
        D.layer_fisher(identity, {}, np.zeros((S, S)), G_small[:5, :5], (12, 0), 5)


# ------------------------------------------------------------------------------ probes / vision


def test_ridge_probe_recovers_a_linear_law_to_the_noise_level():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((600, 20))
    beta = rng.standard_normal((20, 2))
    noise = 0.05
    y = x @ beta + 0.3 + noise * rng.standard_normal((600, 2))
    res = P.ridge_probe(x[:400], y[:400], x[400:], y[400:], seed=0)
    # test RMSE of an OLS-like fit: noise * sqrt(1 + p/n) within its own sampling error
    expected = noise * np.sqrt(1 + 20 / 400)
    k_sigma = 4 * expected / np.sqrt(2 * 200)
    assert np.all(np.abs(res["rmse"] - expected) < k_sigma), res


@pytest.mark.pipeline
def test_mlp_probe_learns_a_nonlinear_law():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((800, 4)).astype(np.float32)
    y = np.stack([x[:, 0] * x[:, 1], np.abs(x[:, 2])], axis=1)
    mlp = P.mlp_probe(x[:600], y[:600], x[600:], y[600:], seed=0, steps=400, lr=3e-3)
    lin = P.ridge_probe(x[:600], y[:600], x[600:], y[600:], seed=0)
    assert np.all(mlp["rmse"] < 0.6 * lin["rmse"]), (mlp, lin)


def test_ml_weight_map_is_an_unbiased_linear_estimator(G_small):
    w = V.ml_weight_map(G_small)
    response = np.einsum("ij,ijp->p", w, G_small)
    assert_allclose(response, np.eye(6)[4], atol=1e-9, err_msg="d g1_ML / d theta must be e_g1")
    assert V.pearson(w, w) == pytest.approx(1.0)
    assert V.pearson(w, -2 * w) == pytest.approx(-1.0)


@pytest.mark.pipeline
def test_blur_pooling_aliases_less_than_average_pooling():
    from shearbridge.config import SimConfig

    sim = SimConfig(stamp_size_px=24)
    res = SP.run_subpixel(0, sim, sizes_arcsec=(0.15,), n_delta=5)
    avg = res["arrays"]["subpixel_random_avg_energy_var"][0]  # (layer, delta)
    blur = res["arrays"]["subpixel_random_blur_energy_var"][0]
    layers = list(SP.SPATIAL_LAYERS)
    # stride-1 convolution of a band-limited stamp: channel energies are shift invariant
    assert avg[layers.index("conv1")].max() < 1e-9
    for layer in ("pool1", "pool2"):
        i = layers.index(layer)
        assert blur[i].max() < avg[i].max(), f"{layer}: blur {blur[i].max()} vs avg {avg[i].max()}"


# ------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_run_diagnosis_and_its_figures_on_the_quick_profile(data_root, monkeypatch, tmp_path):
    """Simulate, train two quick baselines and ShapeNets, diagnose, and draw the four figures.

    Takes minutes."""
    import dataclasses
    import runpy
    import shutil

    from shearbridge import layout
    from shearbridge.layout import Layout
    from shearbridge.sim import datasets as data
    from shearbridge.summaries import collect as summaries
    from shearbridge.config import get_profile
    from shearbridge.config.experiments import get_experiment
    from shearbridge.steps.diagnose import run_diagnosis
    from shearbridge.train.loop import train_and_evaluate

    profile = dataclasses.replace(get_profile("quick"), noise_grid=(1e-5, 1e-3))
    for name in ("train", "test"):
        data.generate_dataset(name, profile, workers=2, progress=False)
    for sigma in profile.noise_grid:
        for name in ("baseline", "shapenet"):
            exp = get_experiment(name, profile, sigma)
            train_and_evaluate(exp, Layout(profile).run(name, sigma), progress=False)
    summary = run_diagnosis(profile, progress=False, experiments=["baseline", "shapenet"])
    out = Layout(profile).dir / "diagnosis"
    assert (out / "diagnosis.json").exists() and (out / "diagnosis.npz").exists()
    with np.load(out / "diagnosis.npz") as z:
        for mode in D.MODES:
            r = z[f"retained_{mode}"]
            assert r.shape[:2] == (2, 2) and r.shape[3:] == (len(Fe.LAYERS), 2)
            assert np.all(r <= 1.0 + TOL), f"{mode}: a layer retains more than the image"
            assert np.all(r[:, :, :, 0] >= 1.0 - 1e-6), "the input layer must keep everything"
    assert set(summary["information"]) == {"1e-05", "1e-03"}
    net = summary["networks"]["shapenet"]
    assert net["noise_tags"] == ["1e-05", "1e-03"] and set(net["information"]) == set(
        net["noise_tags"]
    )
    assert summary["networks"]["baseline"]["information"] == summary["information"]
    with np.load(out / "diagnosis.npz") as z:
        r = z["shapenet_retained_fixed"]
        assert r.shape[3:] == (len(net["layers"]), 2) and np.all(r <= 1.0 + TOL)
        assert np.all(r[:, :, :, 0] >= 1.0 - 1e-6), "ShapeNet's input layer must keep everything"
    summaries.summary_dir().mkdir(parents=True)
    for f in ("diagnosis.json", "diagnosis.npz"):
        shutil.copy(out / f, summaries.summary_dir() / f)
    from shearbridge.config import noise_tag
    from shearbridge.io import (
        write_json,
    )  # the figures label noise levels with the comparison's S/N

    write_json(
        summaries.summary_dir() / "compare.json",
        {
            "profile": profile.name,
            "snr_mf": {
                noise_tag(s): {"median": 0.21 / s, "p16": 1.0, "p84": 1.0}
                for s in profile.noise_grid
            },
        },
    )
    monkeypatch.setattr(layout, "FIGURES", tmp_path / "figures")
    monkeypatch.setenv(
        "SHEARBRIDGE_PROFILE", profile.name
    )  # the scripts refuse another profile's summary
    for script in ("fig_information_per_layer", "fig_probe_rmse", "fig_cnn_vision", "fig_subpixel"):
        runpy.run_path(str(layout.SCRIPTS / f"{script}.py"), run_name="__main__")
        assert (tmp_path / "figures" / f"{script}.pdf").stat().st_size > 1000

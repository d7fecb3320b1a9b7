"""EnhancedGalaxyNN against its layer list (RESEARCH.md section 1) and the model registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shearbridge.config import ConfigError
from shearbridge.models import count_params, get_model, model_names
from shearbridge.models.enhanced import FEATURE_NAMES, EnhancedGalaxyNN

STAMP = 53


def conv_params(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out + c_out  # kernel + bias


def dense_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out  # kernel + bias


def expected_params(n_outputs: int) -> int:
    """Parameter count from the layer list, by hand.

    conv1 3*3*1*16 + 16 = 160; conv2 3*3*16*32 + 32 = 4640;
    53 -> pool -> 26 -> pool -> 13, flatten 13*13*32 = 5408;
    dense1 5408*128 + 128 = 692352; out 128*n + n (516 for n = 4).
    Total for 4 outputs: 160 + 4640 + 692352 + 516 = 697668.
    """
    side = (STAMP // 2) // 2
    flat = side * side * 32
    return (
        conv_params(3, 1, 16)
        + conv_params(3, 16, 32)
        + dense_params(flat, 128)
        + dense_params(128, n_outputs)
    )


def init(n_outputs: int, stamp: int = STAMP):
    model = get_model("enhanced", n_outputs)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, stamp, stamp)))["params"]
    return model, params


@pytest.mark.parametrize("n_outputs", [4, 2])
def test_parameter_count_matches_layer_list(n_outputs):
    _, params = init(n_outputs)
    assert expected_params(4) == 697668  # the arithmetic in the docstring
    assert count_params(params) == expected_params(n_outputs)


def test_parameter_shapes_per_layer():
    _, params = init(4)
    shapes = jax.tree.map(jnp.shape, params)
    assert shapes == {
        "conv1": {"kernel": (3, 3, 1, 16), "bias": (16,)},
        "conv2": {"kernel": (3, 3, 16, 32), "bias": (32,)},
        "dense1": {"kernel": (5408, 128), "bias": (128,)},
        "out": {"kernel": (128, 4), "bias": (4,)},
    }


@pytest.mark.pipeline
def test_every_captured_layer_has_the_documented_shape():
    model, params = init(4)
    batch = 3
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, STAMP, STAMP))
    feats = model.apply({"params": params}, x, return_features=True)
    assert tuple(feats) == FEATURE_NAMES
    expected = {
        "conv1": (batch, 53, 53, 16),
        "relu1": (batch, 53, 53, 16),
        "pool1": (batch, 26, 26, 16),
        "conv2": (batch, 26, 26, 32),
        "relu2": (batch, 26, 26, 32),
        "pool2": (batch, 13, 13, 32),
        "flatten": (batch, 5408),
        "dense1": (batch, 128),
        "relu3": (batch, 128),
        "out": (batch, 4),
    }
    assert {k: v.shape for k, v in feats.items()} == expected
    out = model.apply({"params": params}, x)
    np.testing.assert_array_equal(
        np.asarray(out), np.asarray(feats["out"]), err_msg="out != features['out']"
    )


def test_layers_compute_what_the_list_says():
    """ReLU is max(0, .), VALID 2x2 pooling is the mean of 2x2 blocks (last odd row/col dropped)."""
    model, params = init(4)
    x = jax.random.normal(jax.random.PRNGKey(2), (2, STAMP, STAMP))
    f = {
        k: np.asarray(v, np.float64)
        for k, v in model.apply({"params": params}, x, return_features=True).items()
    }
    np.testing.assert_array_equal(f["relu1"], np.maximum(f["conv1"], 0.0))
    blocks = f["relu1"][:, :52, :52].reshape(2, 26, 2, 26, 2, 16).mean(axis=(2, 4))
    np.testing.assert_allclose(
        f["pool1"], blocks, rtol=1e-6, atol=1e-7, err_msg="pool1 is not a 2x2/2 VALID mean"
    )
    np.testing.assert_array_equal(f["flatten"], f["pool2"].reshape(2, -1))
    dense = f["flatten"] @ np.asarray(params["dense1"]["kernel"], np.float64) + np.asarray(
        params["dense1"]["bias"]
    )
    np.testing.assert_allclose(
        f["dense1"], dense, rtol=1e-4, atol=1e-5, err_msg="dense1 is not flatten @ W + b"
    )


def test_features_are_jit_friendly():
    model, params = init(2)
    x = jnp.ones((2, STAMP, STAMP))
    fn = jax.jit(lambda p, x: model.apply({"params": p}, x, return_features=True))
    feats = fn(params, x)
    assert feats["out"].shape == (2, 2)
    assert feats["pool2"].shape == (2, 13, 13, 32)


def test_accepts_channel_axis_and_rejects_bad_shapes():
    model, params = init(4)
    x = jnp.ones((2, STAMP, STAMP))
    np.testing.assert_array_equal(
        np.asarray(model.apply({"params": params}, x)),
        np.asarray(model.apply({"params": params}, x[..., None])),
    )
    with pytest.raises(ValueError, match="expects stamps of shape"):
        model.apply({"params": params}, jnp.ones((STAMP, STAMP)))


def test_registry():
    assert "enhanced" in model_names()
    assert isinstance(get_model("enhanced", 2), EnhancedGalaxyNN)
    with pytest.raises(ConfigError, match="unknown model 'nope'.*enhanced"):
        get_model("nope", 4)
    with pytest.raises(ConfigError, match="bad model_kwargs"):
        get_model("enhanced", 4, widths=3)


def test_count_params_on_a_known_tree():
    tree = {"a": np.zeros((3, 4)), "b": [np.zeros(5), np.zeros((2, 2, 2))]}
    assert count_params(tree) == 12 + 5 + 8


@pytest.mark.pipeline
@pytest.mark.parametrize("name", ["enhanced", "shapenet"])
def test_init_params_equals_eager_init(name):
    from shearbridge.models import init_params

    from shearbridge.config import SimConfig
    from shearbridge.models import bind_data_kwargs

    model = get_model(name, 2, **bind_data_kwargs(name, {}, SimConfig()))
    key = jax.random.PRNGKey(3)
    eager = model.init(key, jnp.zeros((1, 21, 21), jnp.float32))["params"]
    jitted = init_params(model, key, 21)
    assert jax.tree.structure(eager) == jax.tree.structure(jitted)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_map_batches_pads_trims_and_compiles_once():
    from shearbridge.models import map_batches

    traces = []

    @jax.jit
    def fn(x):
        traces.append(x.shape)  # runs once per compilation
        return jnp.sum(x, axis=(1, 2))

    images = np.arange(7 * 3 * 3, dtype=np.float32).reshape(7, 3, 3)
    out = map_batches(fn, images, 3)  # batches of 3, 3 and 1 (+2 zero rows)
    np.testing.assert_array_equal(out, images.sum(axis=(1, 2)))
    assert traces == [(3, 3, 3)]
    # further per-row arrays are batched alongside, and a pytree output is concatenated leaf by leaf
    both = map_batches(
        jax.jit(lambda x, w: {"s": jnp.sum(x, axis=(1, 2)) * w, "w": w}),
        images,
        3,
        np.arange(7, dtype=np.float32),
    )
    np.testing.assert_array_equal(both["s"], images.sum(axis=(1, 2)) * np.arange(7))
    np.testing.assert_array_equal(both["w"], np.arange(7))
    with pytest.raises(ValueError, match="7 rows"):
        map_batches(fn, images, 3, np.zeros(6))
    with pytest.raises(ValueError, match="at least one image"):
        map_batches(fn, images[:0], 3)
    with pytest.raises(ValueError, match="batch_size"):
        map_batches(fn, images, 0)

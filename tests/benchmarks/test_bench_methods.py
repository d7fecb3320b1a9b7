"""Speed benchmarks (pytest-benchmark): ``make bench``; skipped by the normal test run.

Every method of the paper: inference of every registered network at batch
64/256/1024 (``shearbridge.models.model_names()``, so a new model is picked up
automatically), one training step of every network with the fast CPU settings
of ``train.py``, the JAX ML fit, HSM REGAUSS and KSB, ngmix (skipped where it is
not installed), and the simulation of a batch of stamps.

Each benchmark compiles / warms up first, blocks until the result is ready
inside the timed call, and asserts that the output is right: shape and
finiteness, networks equal to an un-jitted per-row evaluation, the training step
equal to the loss recomputed from the parameters, estimators close to the truth
on noise-free, well-resolved stamps, simulated stamps carrying their flux.

``make bench`` compares with the stored baseline in ``.benchmarks/baseline``;
see the README section "Speed" for the ``--benchmark-compare`` workflow.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shearbridge.sim import stamps as simmod
from shearbridge.config import SimConfig, TrainConfig
from shearbridge.models import bind_data_kwargs, get_model, model_names

N_STAMPS = 64
STAMP = 53


@pytest.fixture(scope="module")
def stamps():
    """Noise-free stamps of well-resolved galaxies (size >= 0.4 arcsec, PSF sigma 0.25)."""
    sim = SimConfig()
    labels = simmod.draw_population(sim, 4 * N_STAMPS, np.random.default_rng(1))
    keep = np.flatnonzero(np.asarray(labels["size_arcsec"]) >= 0.4)[:N_STAMPS]
    assert len(keep) == N_STAMPS
    labels = {k: np.asarray(v)[keep] if np.ndim(v) == 1 else v for k, v in labels.items()}
    images = simmod.render_rows(sim, labels, range(N_STAMPS))
    return sim, labels, images.astype(np.float32), simmod.render_psf(sim)


@pytest.fixture(scope="module")
def net_inputs(stamps):
    """1024 galaxy stamps (the 64 above with 16 independent noise fields, sigma 1e-4)
    and their standardised (g1, g2, size, flux) labels, as device arrays."""
    _, labels, images, _ = stamps
    rng = np.random.default_rng(4)
    x = np.tile(images, (16, 1, 1)) + 1e-4 * rng.standard_normal((16 * N_STAMPS, STAMP, STAMP))
    y = np.stack([labels[k] for k in ("g1", "g2", "size_arcsec", "flux")], axis=1)
    y = np.tile((y - y.mean(axis=0)) / y.std(axis=0), (16, 1))
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


def _init(name: str):
    model = get_model(
        name, 4, **bind_data_kwargs(name, {}, SimConfig())
    )  # told the PSF of its data
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, STAMP, STAMP)))["params"]
    return model, params


@pytest.mark.parametrize("batch", [64, 256, 1024])
@pytest.mark.parametrize("name", model_names())
def test_bench_inference(benchmark, net_inputs, name, batch):
    model, params = _init(name)
    x = net_inputs[0][:batch]
    f = jax.jit(lambda p, x: model.apply({"params": p}, x))
    f(params, x).block_until_ready()  # compile
    out = benchmark(lambda: f(params, x).block_until_ready())
    benchmark.extra_info["galaxies_per_call"] = batch
    assert out.shape == (batch, 4) and bool(jnp.all(jnp.isfinite(out)))
    rows = model.apply({"params": params}, x[:2])  # un-jitted, other batch size
    np.testing.assert_allclose(np.asarray(out[:2]), np.asarray(rows), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", model_names())
def test_bench_train_step(benchmark, net_inputs, name):
    """The step of train.py (in-jit batch gather, AdamW) compiled with its CPU settings."""
    from shearbridge.train.optim import compile_options, make_optimizer, train_step as _train_step

    model, params = _init(name)
    tc = TrainConfig()
    tx, _ = make_optimizer(tc, steps_per_epoch=100, epochs=10)
    opt_state = tx.init(params)
    images, targets = net_inputs
    idx = np.arange(tc.batch_size, dtype=np.int32)
    step = jax.jit(lambda p, o, i: _train_step(model, tx, p, o, images, targets, i))
    step = step.lower(params, opt_state, idx).compile(compiler_options=compile_options())
    jax.block_until_ready(step(params, opt_state, idx))
    p2, _, loss = benchmark(lambda: jax.block_until_ready(step(params, opt_state, idx)))
    benchmark.extra_info["galaxies_per_call"] = tc.batch_size
    expected = jnp.mean((model.apply({"params": params}, images[idx]) - targets[idx]) ** 2)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert jax.tree.structure(p2) == jax.tree.structure(params)
    assert any(
        not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(p2), jax.tree.leaves(params))
    )


def test_bench_mlfit(benchmark, stamps):
    from shearbridge.estimators.mlfit import MLFitEstimator

    sim, labels, images, psf = stamps
    est = MLFitEstimator(model="gauss", batch_size=N_STAMPS)
    est.measure(images, psf, sim.pixel_scale_arcsec, 1e-5)  # compile
    res = benchmark(lambda: est.measure(images, psf, sim.pixel_scale_arcsec, 1e-5))
    benchmark.extra_info["galaxies_per_call"] = N_STAMPS
    ok = res.ok
    assert ok.mean() > 0.9
    # the model is exact for these stamps: the fit recovers the shear to round-off level
    np.testing.assert_allclose(res.g1[ok], labels["g1"][ok], atol=1e-4)
    np.testing.assert_allclose(res.g2[ok], labels["g2"][ok], atol=1e-4)


@pytest.mark.parametrize("method", ["REGAUSS", "KSB"])
def test_bench_hsm(benchmark, stamps, method):
    from shearbridge.estimators.hsm import HSMEstimator

    sim, labels, images, psf = stamps
    est = HSMEstimator(method=method)
    est.measure(images[:4], psf, sim.pixel_scale_arcsec, 1e-5)  # warm-up
    res = benchmark(lambda: est.measure(images, psf, sim.pixel_scale_arcsec, 1e-5))
    benchmark.extra_info["galaxies_per_call"] = N_STAMPS
    assert res.ok.mean() > 0.9
    # REGAUSS is accurate on well-resolved noise-free Gaussians; KSB is biased at large |g|
    tol = 0.02 if method == "REGAUSS" else 0.3
    assert np.median(np.abs(res.g1[res.ok] - labels["g1"][res.ok])) < tol


def test_bench_ngmix(benchmark, stamps):
    pytest.importorskip("ngmix")
    from shearbridge.estimators.ngmix_adapter import NgmixMLEstimator

    sim, labels, images, psf = stamps
    est = NgmixMLEstimator(model="gauss", seed=3)
    est.measure(images[:4], psf, sim.pixel_scale_arcsec, 1e-5)  # warm-up
    res = benchmark(lambda: est.measure(images, psf, sim.pixel_scale_arcsec, 1e-5))
    benchmark.extra_info["galaxies_per_call"] = N_STAMPS
    ok = res.ok
    assert ok.mean() > 0.9
    assert np.median(np.abs(res.g1[ok] - labels["g1"][ok])) < 1e-3


def test_bench_simulate(benchmark):
    sim = SimConfig()
    labels = simmod.draw_population(sim, N_STAMPS, np.random.default_rng(2))
    simmod.render_rows(sim, labels, range(2))  # warm-up
    out = benchmark(lambda: simmod.render_rows(sim, labels, range(N_STAMPS)))
    benchmark.extra_info["galaxies_per_call"] = N_STAMPS
    assert out.shape == (N_STAMPS, STAMP, STAMP) and np.all(np.isfinite(out))
    # the stamp holds the galaxy's flux up to what falls outside it (< 5 %)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), labels["flux"], rtol=0.05)

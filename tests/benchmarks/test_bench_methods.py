"""Speed benchmarks (pytest-benchmark): ``make bench``; skipped by the normal test run.

Each benchmark compiles / warms up first, blocks until the result is ready inside
the timed call, and asserts the output is right (shape, finite, and close to the
truth on easy, noise-free stamps). Compare runs with
``pytest tests/benchmarks --benchmark-only --benchmark-enable --benchmark-compare``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shearbridge import sim as simmod
from shearbridge.config import SimConfig, TrainConfig
from shearbridge.models import get_model

N_STAMPS = 64


@pytest.fixture(scope="module")
def stamps():
    sim = SimConfig()
    labels = simmod.draw_population(sim, N_STAMPS, np.random.default_rng(1))
    images = simmod.render_rows(sim, labels, range(N_STAMPS))
    return sim, labels, images.astype(np.float32), simmod.render_psf(sim)


@pytest.mark.parametrize("batch", [64, 256, 1024])
def test_bench_baseline_inference(benchmark, batch):
    model = get_model("enhanced", 4)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 53, 53)))["params"]
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, 53, 53))
    f = jax.jit(lambda p, x: model.apply({"params": p}, x))
    f(params, x).block_until_ready()
    out = benchmark(lambda: f(params, x).block_until_ready())
    benchmark.extra_info["galaxies_per_call"] = batch
    assert out.shape == (batch, 4) and bool(jnp.all(jnp.isfinite(out)))


def test_bench_baseline_train_step(benchmark):
    import optax

    from shearbridge.train import _train_step

    model = get_model("enhanced", 4)
    tc = TrainConfig()
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 53, 53)))["params"]
    tx = optax.adamw(tc.learning_rate, weight_decay=tc.weight_decay)
    opt_state = tx.init(params)
    images = jax.random.normal(jax.random.PRNGKey(1), (1024, 53, 53))
    targets = jax.random.normal(jax.random.PRNGKey(2), (1024, 4))
    idx = jnp.arange(tc.batch_size)
    step = jax.jit(lambda p, o, i: _train_step(model, tx, p, o, images, targets, i))
    jax.block_until_ready(step(params, opt_state, idx))
    p2, _, loss = benchmark(lambda: jax.block_until_ready(step(params, opt_state, idx)))
    benchmark.extra_info["galaxies_per_call"] = tc.batch_size
    assert np.isfinite(float(loss))
    assert jax.tree.structure(p2) == jax.tree.structure(params)


def test_bench_mlfit(benchmark, stamps):
    from shearbridge.estimators.mlfit import MLFitEstimator

    sim, labels, images, psf = stamps
    est = MLFitEstimator(model="gauss", batch_size=N_STAMPS)
    est.measure(images, psf, sim.pixel_scale_arcsec, 1e-5)  # compile
    res = benchmark(lambda: est.measure(images, psf, sim.pixel_scale_arcsec, 1e-5))
    benchmark.extra_info["galaxies_per_call"] = N_STAMPS
    ok = res.ok
    assert ok.mean() > 0.9
    np.testing.assert_allclose(res.g1[ok], labels["g1"][ok], atol=1e-4)


@pytest.mark.parametrize("method", ["REGAUSS", "KSB"])
def test_bench_hsm(benchmark, stamps, method):
    from shearbridge.estimators.hsm import HSMEstimator

    sim, labels, images, psf = stamps
    est = HSMEstimator(method=method)
    res = benchmark(lambda: est.measure(images, psf, sim.pixel_scale_arcsec, 1e-5))
    benchmark.extra_info["galaxies_per_call"] = N_STAMPS
    assert res.ok.mean() > 0.9
    # REGAUSS is exact on well-resolved noise-free Gaussians; KSB is biased at large |g|
    tol = 0.02 if method == "REGAUSS" else 0.3
    assert np.median(np.abs(res.g1[res.ok] - labels["g1"][res.ok])) < tol


def test_bench_simulate(benchmark):
    sim = SimConfig()
    labels = simmod.draw_population(sim, N_STAMPS, np.random.default_rng(2))
    out = benchmark(lambda: simmod.render_rows(sim, labels, range(N_STAMPS)))
    benchmark.extra_info["galaxies_per_call"] = N_STAMPS
    assert out.shape == (N_STAMPS, 53, 53) and np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=(1, 2)), labels["flux"], rtol=0.05)

"""PSFNet's speed beside the baseline network's (pytest-benchmark; ``make bench``).

One group per batch size holds PSFNet's forward pass (stamp, PSF image and noise sigma in) and the
baseline EnhancedGalaxyNN's, so pytest-benchmark prints their ratio side by side (PSFNet's training
rate is in the study's ``training.json``). Each asserts its output is right (finite, and the jitted
forward pass equal to the un-jitted one).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shearbridge.config import SimConfig
from shearbridge.models import bind_data_kwargs, get_model
from shearbridge.models.psfnet import PSFNet
from shearbridge.sim.population import (
    PopulationConfig,
    draw_population,
    render_population,
    training_families,
)


@pytest.fixture(scope="module")
def population():
    cfg = PopulationConfig()
    galaxies, psfs = training_families(cfg)
    labels = draw_population(cfg, 256, np.random.default_rng(2), galaxies=galaxies, psfs=psfs)
    stamps, psf_images = render_population(cfg, labels)
    sigma = np.full(len(stamps), 1e-3, np.float32)
    noisy = stamps + np.random.default_rng(3).normal(size=stamps.shape).astype(np.float32) * 1e-3
    return noisy, psf_images, sigma, np.c_[labels["g1"], labels["g2"]].astype(np.float32)


@pytest.mark.parametrize("batch", [64, 256])
@pytest.mark.parametrize("name", ["psfnet", "baseline"])
def test_bench_psfnet_inference(benchmark, population, name, batch):
    x, psf, sigma, _ = population
    benchmark.group = f"psfnet-vs-baseline-batch{batch}"
    if name == "psfnet":
        model = PSFNet()
        params = model.init(jax.random.PRNGKey(0), x[:2], psf[:2], sigma[:2])
        f = jax.jit(model.apply)
        args = (jnp.asarray(x[:batch]), jnp.asarray(psf[:batch]), jnp.asarray(sigma[:batch]))
        rows = model.apply(params, x[:2], psf[:2], sigma[:2])
    else:
        model = get_model("enhanced", 4, **bind_data_kwargs("enhanced", {}, SimConfig()))
        params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 53, 53)))
        f = jax.jit(model.apply)
        args = (jnp.asarray(x[:batch]),)
        rows = model.apply(params, x[:2])
    f(params, *args).block_until_ready()
    out = benchmark(lambda: f(params, *args).block_until_ready())
    benchmark.extra_info["galaxies_per_call"] = batch
    assert bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_allclose(np.asarray(out[:2]), np.asarray(rows), rtol=1e-4, atol=1e-5)

"""Sub-pixel sensitivity of EnhancedGalaxyNN's pooling: average vs anti-aliased blur pooling.

The conv/pool stack of EnhancedGalaxyNN (:data:`~shearbridge.models.enhanced.SPATIAL_LAYERS`)
with its 2x2 average pooling (stride 2, VALID) or with anti-aliased
:class:`~shearbridge.models.pooling.BlurPool` (binomial [1, 3, 3, 1]/8 blur, stride 2;
Zhang 2019), *same conv weights*, fed a galaxy shifted by 0..1 px and sheared by +-0.01.
An empirical counterpart of the per-layer Fisher diagnosis (:mod:`shearbridge.diagnosis.fisher`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from shearbridge.config import SimConfig
from shearbridge.estimators.render import Renderer
from shearbridge.models.enhanced import SPATIAL_LAYERS, EnhancedGalaxyNN
from shearbridge.models.pooling import BlurPool
from shearbridge.sim.stamps import render_psf

__all__ = ["SHEAR_STEP", "SPATIAL_LAYERS", "PoolStack", "run_subpixel", "subpixel_response"]

SHEAR_STEP = 0.01  # +-g1 for the shear signal


class PoolStack(nn.Module):
    """EnhancedGalaxyNN's conv/pool stack (conv1 .. pool2) with a choice of pooling.

    ``pool="avg"``: ``nn.avg_pool`` 2x2 stride 2 VALID (as EnhancedGalaxyNN);
    ``pool="blur"``: :class:`~shearbridge.models.pooling.BlurPool` (4-tap binomial, stride 2).
    Parameter names (``conv1``, ``conv2``) match EnhancedGalaxyNN's.
    """

    pool: str = "avg"

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        if self.pool not in ("avg", "blur"):
            raise ValueError(f"pool must be 'avg' or 'blur', got {self.pool!r}")

        def down(h: jax.Array) -> jax.Array:
            if self.pool == "avg":
                return nn.avg_pool(h, (2, 2), strides=(2, 2), padding="VALID")
            return BlurPool(filter_size=4, stride=2)(h)

        f: dict[str, jax.Array] = {}
        f["conv1"] = nn.Conv(16, (3, 3), padding="SAME", name="conv1")(x[..., None])
        f["relu1"] = nn.relu(f["conv1"])
        f["pool1"] = down(f["relu1"])
        f["conv2"] = nn.Conv(32, (3, 3), padding="SAME", name="conv2")(f["pool1"])
        f["relu2"] = nn.relu(f["conv2"])
        f["pool2"] = down(f["relu2"])
        return f


@functools.partial(jax.jit, static_argnames="pool")
def _pool_stack(pool: str, params: Any, x: jax.Array) -> dict[str, jax.Array]:
    return PoolStack(pool).apply({"params": params}, x)


def subpixel_response(conv_params: Mapping, images: np.ndarray, pool: str) -> dict[str, np.ndarray]:
    """Feature maps (float64) of ``images`` (N, S, S) through :class:`PoolStack`."""
    with jax.enable_x64(True):
        p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), dict(conv_params))
        out = _pool_stack(pool, p, jnp.asarray(images, jnp.float64))
        return {k: np.asarray(v) for k, v in out.items()}


def _metrics(f: dict[str, np.ndarray], n_d: int) -> dict[str, np.ndarray]:
    """Rows: 0..n_d-1 shifted stamps (row 0 unshifted), then +g1, -g1."""
    res: dict[str, list] = {
        "rel_change": [],
        "shear_signal": [],
        "energy_var": [],
        "energy_shear": [],
    }
    for k in SPATIAL_LAYERS:
        h = f[k].reshape(len(f[k]), -1)
        e = (f[k] ** 2).sum(axis=(1, 2))  # per-channel energy: invariant to whole-pixel shifts
        n0, e0 = np.linalg.norm(h[0]), np.linalg.norm(e[0])
        res["rel_change"].append(np.linalg.norm(h[:n_d] - h[0], axis=1) / n0)
        res["shear_signal"].append(np.linalg.norm(h[n_d] - h[n_d + 1]) / (2 * n0))
        res["energy_var"].append(np.linalg.norm(e[:n_d] - e[0], axis=1) / e0)
        res["energy_shear"].append(np.linalg.norm(e[n_d] - e[n_d + 1]) / (2 * e0))
    return {k: np.asarray(v) for k, v in res.items()}


def run_subpixel(
    seed: int,
    sim: SimConfig,
    trained_conv: Mapping | None = None,
    sizes_arcsec: tuple[float, ...] = (0.15, 0.3, 0.6),
    n_delta: int = 11,
) -> dict:
    """Average vs blur pooling: response to sub-pixel x shifts (0..1 px) and to g1 = +-0.01.

    Galaxies: round Gaussians of the given sigmas (arcsec), flux 1, through the
    dataset PSF. Networks: a random initialisation (``jax.random.key(seed)``) and,
    when given, a trained network's conv weights, each with both poolings.
    ``g_equiv`` is the g1 that changes the channel energies as much as the worst
    sub-pixel shift: ``SHEAR_STEP * max(energy_var) / energy_shear``.
    """
    rend = Renderer.from_psf_image(render_psf(sim), sim.pixel_scale_arcsec)
    deltas = np.linspace(0.0, 1.0, n_delta)
    s = sim.stamp_size_px
    init = EnhancedGalaxyNN(4).init(jax.random.key(seed), jnp.zeros((1, s, s), jnp.float32))[
        "params"
    ]
    nets = {"random": {k: init[k] for k in ("conv1", "conv2")}}
    if trained_conv is not None:
        nets["trained"] = dict(trained_conv)
    arrays: dict[str, np.ndarray] = {
        "subpixel_deltas_px": deltas,
        "subpixel_sizes_arcsec": np.asarray(sizes_arcsec),
    }
    summary: dict[str, Any] = {
        "layers": list(SPATIAL_LAYERS),
        "sizes_arcsec": list(sizes_arcsec),
        "shear_step": SHEAR_STEP,
    }
    for net, params in nets.items():
        for pool in ("avg", "blur"):
            per = {key: [] for key in ("rel_change", "shear_signal", "energy_var", "energy_shear")}
            for size in sizes_arcsec:
                rows = [[1.0, d * sim.pixel_scale_arcsec, 0.0, size, 0.0, 0.0] for d in deltas]
                rows += [
                    [1.0, 0.0, 0.0, size, SHEAR_STEP, 0.0],
                    [1.0, 0.0, 0.0, size, -SHEAR_STEP, 0.0],
                ]
                m = _metrics(
                    subpixel_response(params, rend.render(np.asarray(rows)), pool), n_delta
                )
                for key, values in per.items():
                    values.append(m[key])
            per_arr = {key: np.stack(v) for key, v in per.items()}  # (n_size, n_layer[, n_delta])
            g_equiv = SHEAR_STEP * per_arr["energy_var"].max(-1) / per_arr["energy_shear"]
            for key, v in per_arr.items():
                arrays[f"subpixel_{net}_{pool}_{key}"] = v
            arrays[f"subpixel_{net}_{pool}_g_equiv"] = g_equiv
            summary[f"{net}_{pool}"] = {
                "g_equiv": g_equiv.tolist(),
                "max_energy_var": per_arr["energy_var"].max(-1).tolist(),
                "shear_signal": per_arr["shear_signal"].tolist(),
            }
    return {"summary": summary, "arrays": arrays}

"""Empirical and visual counterparts of the per-layer Fisher diagnosis (:mod:`shearbridge.diagnosis`).

* **Probes**: small decoders trained on each layer's frozen activations to predict
  ``(g1, g2)``: a ridge-regularised linear probe (closed form, ridge strength chosen on
  a validation split) and a one-hidden-layer MLP (optax AdamW). Layers wider than
  ``dim`` are first compressed by signed feature hashing (a fixed, seeded random
  linear sketch: feature ``i`` is added with sign ``s_i`` to bucket ``b_i``; Weinberger
  et al. 2009), so every probe sees at most ``dim`` inputs.
* **Sub-pixel sensitivity**: the conv/pool stack of EnhancedGalaxyNN with its 2x2
  average pooling (stride 2, VALID) or with anti-aliased :class:`~shearbridge.layers.BlurPool`
  (binomial [1, 3, 3, 1]/8 blur, stride 2; Zhang 2019), *same conv weights*, fed a
  galaxy shifted by 0..1 px and sheared by +-0.01.
* **CNN vision**: feature maps of one galaxy; the saliency ``d g1_hat / d x`` of the
  trained network next to the maximum-likelihood estimator's weight map
  ``d g1_ML / d x = [(G^T G)^-1 G^T]_g1`` (all six parameters free, white noise).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .config import Profile, SimConfig, noise_tag
from .diagnosis import LAYERS
from .layers import BlurPool

__all__ = [
    "SPATIAL_LAYERS",
    "PoolStack",
    "hash_layout",
    "layer_activations",
    "ml_weight_map",
    "mlp_probe",
    "pearson",
    "ridge_probe",
    "run_probes",
    "run_subpixel",
    "run_vision",
    "saliency",
    "subpixel_response",
]

SPATIAL_LAYERS = ("conv1", "relu1", "pool1", "conv2", "relu2", "pool2")
SHEAR_STEP = 0.01  # +-g1 for the shear signal


# --------------------------------------------------------------------------- probes


def hash_layout(d: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket (d,) in ``[0, dim)`` and sign (d,) in ``{-1, +1}`` of a signed feature hash."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, d, dim]))
    return rng.integers(0, dim, size=d).astype(np.int32), rng.choice([-1.0, 1.0], size=d).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("model", "dim"))
def _features(model: nn.Module, params: Any, x: jax.Array, layouts: Mapping, dim: int) -> dict:
    f = model.apply({"params": params}, x, return_features=True) | {"input": x}
    out = {}
    for k in LAYERS:
        a = f[k].reshape(x.shape[0], -1)
        if k in layouts:
            bucket, sign = layouts[k]
            a = jax.ops.segment_sum((a * sign).T, bucket, num_segments=dim).T
        out[k] = a
    return out


def layer_activations(trained: Any, images: np.ndarray, dim: int, seed: int, batch: int = 250) -> dict:
    """Each layer's activations (N, <= dim) float32 for stamps ``images`` (N, S, S)."""
    shapes = jax.eval_shape(lambda x: trained.model.apply({"params": trained.params}, x,
                                                          return_features=True),
                            jax.ShapeDtypeStruct((1, *images.shape[1:]), jnp.float32))
    sizes = {k: int(np.prod(shapes[k].shape[1:])) for k in LAYERS if k != "input"}
    sizes["input"] = int(np.prod(images.shape[1:]))
    layouts = {k: tuple(map(jnp.asarray, hash_layout(d, dim, seed))) for k, d in sizes.items() if d > dim}
    chunks = []
    for a in range(0, len(images), batch):
        x = np.asarray(images[a : a + batch], np.float32)
        pad = batch - len(x)
        x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), np.float32)]) if pad else x
        out = _features(trained.model, trained.params, jnp.asarray(x), layouts, dim)
        chunks.append({k: np.asarray(v)[: batch - pad] for k, v in out.items()})
    return {k: np.concatenate([c[k] for c in chunks]) for k in LAYERS}


def _standardise(xtr: np.ndarray, xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = xtr.mean(axis=0)
    sd = xtr.std(axis=0)
    sd = np.where(sd > 1e-12 * max(float(sd.max()), 1e-300), sd, 1.0)
    return (xtr - mu) / sd, (xte - mu) / sd


def ridge_probe(
    xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, *, seed: int,
    lambdas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0), val_fraction: float = 0.2,
) -> dict:
    """Linear probe ``y ~ X beta + c`` with ridge strength ``lambda * n`` picked on a validation split.

    Returns
    -------
    dict
        ``rmse`` (per target column, test set, label units) and the chosen ``lambda``.
    """
    xtr, xte = _standardise(np.asarray(xtr, np.float64), np.asarray(xte, np.float64))
    ytr, yte = np.asarray(ytr, np.float64), np.asarray(yte, np.float64)
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x7157])).permutation(len(xtr))
    n_val = max(1, round(val_fraction * len(xtr)))
    va, fit = perm[:n_val], perm[n_val:]

    def solve(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
        mx, my = x.mean(0), y.mean(0)
        xc = x - mx
        a = xc.T @ xc + lam * len(x) * np.eye(x.shape[1])
        beta = np.linalg.solve(a, xc.T @ (y - my))
        return beta, my - mx @ beta

    def mse(beta, c, x, y) -> float:
        return float(np.mean((x @ beta + c - y) ** 2))

    scores = [mse(*solve(xtr[fit], ytr[fit], lam), xtr[va], ytr[va]) for lam in lambdas]
    lam = lambdas[int(np.argmin(scores))]
    beta, c = solve(xtr, ytr, lam)
    err = xte @ beta + c - yte
    return {"rmse": np.sqrt(np.mean(err**2, axis=0)), "lambda": float(lam)}


class _MLP(nn.Module):
    hidden: int
    n_out: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Dense(self.n_out)(nn.relu(nn.Dense(self.hidden)(x)))


@functools.partial(jax.jit, static_argnames=("hidden", "steps", "batch"))
def _fit_mlp(x, y, key, lr, hidden, steps, batch):
    mlp = _MLP(hidden, y.shape[1])
    k_init, k_idx = jax.random.split(key)
    params = mlp.init(k_init, x[:1])["params"]
    tx = optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=1e-4)
    idx = jax.random.randint(k_idx, (steps, batch), 0, x.shape[0])

    def step(carry, i):
        p, s = carry
        loss, g = jax.value_and_grad(lambda q: jnp.mean((mlp.apply({"params": q}, x[i]) - y[i]) ** 2))(p)
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), idx)
    return params, losses


def mlp_probe(
    xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, *, seed: int,
    hidden: int = 64, steps: int = 300, lr: float = 1e-3, batch: int = 128,
) -> dict:
    """One-hidden-layer ReLU MLP probe (AdamW, cosine decay, MSE on standardised targets).

    Returns ``rmse`` per target column on the test set (label units) and the final
    training loss (standardised units).
    """
    xtr, xte = _standardise(np.asarray(xtr, np.float32), np.asarray(xte, np.float32))
    ym, ys = ytr.mean(0), ytr.std(0)
    key = jax.random.key(seed)
    params, losses = _fit_mlp(jnp.asarray(xtr, jnp.float32), jnp.asarray((ytr - ym) / ys, jnp.float32),
                              key, lr, hidden, steps, min(batch, len(xtr)))
    pred = np.asarray(_MLP(hidden, ytr.shape[1]).apply({"params": params}, jnp.asarray(xte, jnp.float32)))
    err = pred * ys + ym - yte
    return {"rmse": np.sqrt(np.mean(err**2, axis=0)), "final_loss": float(losses[-1])}


def run_probes(trained: Mapping[float, Any], grid: tuple[float, ...], profile: Profile, sizes: Any,
               progress: Any = None) -> dict:
    """Linear and MLP probe test RMSE on (g1, g2) for every layer and noise level."""
    from . import data

    train = data.load_dataset("train", profile).subset(slice(0, sizes.n_probe_train))
    test_all = data.load_dataset("test", profile)
    test = test_all.subset(slice(len(test_all) - sizes.n_probe_test, len(test_all)))
    ytr, yte = train.targets(2), test.targets(2)
    lin = np.zeros((len(grid), len(LAYERS), 2))
    mlp = np.zeros_like(lin)
    net = np.zeros((len(grid), 2))
    for k, sigma in enumerate(grid):
        seed = profile.seed + k
        a_tr = layer_activations(trained[sigma], train.images(sigma), sizes.probe_dim, profile.seed)
        a_te = layer_activations(trained[sigma], test.images(sigma), sizes.probe_dim, profile.seed)
        for j, layer in enumerate(LAYERS):
            lin[k, j] = ridge_probe(a_tr[layer], ytr, a_te[layer], yte, seed=seed)["rmse"]
            mlp[k, j] = mlp_probe(a_tr[layer], ytr, a_te[layer], yte, seed=seed,
                                  steps=sizes.mlp_steps)["rmse"]
        net[k] = np.sqrt(np.mean((trained[sigma].predict(test.images(sigma))[:, :2] - yte) ** 2, axis=0))
        if progress is not None:
            progress.update(1)
    summary = {
        noise_tag(s): {
            "linear": {layer: lin[k, j].tolist() for j, layer in enumerate(LAYERS)},
            "mlp": {layer: mlp[k, j].tolist() for j, layer in enumerate(LAYERS)},
            "network": net[k].tolist(),
        }
        for k, s in enumerate(grid)
    } | {
        "prior_rmse": np.sqrt(np.mean((yte - ytr.mean(0)) ** 2, axis=0)).tolist(),
        "n_train": len(train), "n_test": len(test), "dim": sizes.probe_dim, "mlp_steps": sizes.mlp_steps,
        "method": "ridge (closed form, lambda on a 20% validation split) and MLP (64 ReLU units, AdamW "
                  "1e-3 cosine, batch 128) on standardised activations; layers wider than dim "
                  "feature-hashed to dim",
    }
    return {"summary": summary, "arrays": {"probe_rmse_linear": lin, "probe_rmse_mlp": mlp,
                                           "probe_rmse_network": net}}


# --------------------------------------------------------------------------- sub-pixel


class PoolStack(nn.Module):
    """EnhancedGalaxyNN's conv/pool stack (conv1 .. pool2) with a choice of pooling.

    ``pool="avg"``: ``nn.avg_pool`` 2x2 stride 2 VALID (as EnhancedGalaxyNN);
    ``pool="blur"``: :class:`~shearbridge.layers.BlurPool` (4-tap binomial, stride 2).
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
    res: dict[str, list] = {"rel_change": [], "shear_signal": [], "energy_var": [], "energy_shear": []}
    for k in SPATIAL_LAYERS:
        h = f[k].reshape(len(f[k]), -1)
        e = (f[k] ** 2).sum(axis=(1, 2))  # per-channel energy: invariant to whole-pixel shifts
        n0, e0 = np.linalg.norm(h[0]), np.linalg.norm(e[0])
        res["rel_change"].append(np.linalg.norm(h[:n_d] - h[0], axis=1) / n0)
        res["shear_signal"].append(np.linalg.norm(h[n_d] - h[n_d + 1]) / (2 * n0))
        res["energy_var"].append(np.linalg.norm(e[:n_d] - e[0], axis=1) / e0)
        res["energy_shear"].append(np.linalg.norm(e[n_d] - e[n_d + 1]) / (2 * e0))
    return {k: np.asarray(v) for k, v in res.items()}


def run_subpixel(seed: int, sim: SimConfig, trained_conv: Mapping | None = None,
                 sizes_arcsec: tuple[float, ...] = (0.15, 0.3, 0.6), n_delta: int = 11) -> dict:
    """Average vs blur pooling: response to sub-pixel x shifts (0..1 px) and to g1 = +-0.01.

    Galaxies: round Gaussians of the given sigmas (arcsec), flux 1, through the
    dataset PSF. Networks: a random initialisation (``jax.random.key(seed)``) and,
    when given, a trained network's conv weights, each with both poolings.
    ``g_equiv`` is the g1 that changes the channel energies as much as the worst
    sub-pixel shift: ``SHEAR_STEP * max(energy_var) / energy_shear``.
    """
    from .estimators.render import Renderer
    from .models.enhanced import EnhancedGalaxyNN
    from .sim import render_psf

    rend = Renderer.from_psf_image(render_psf(sim), sim.pixel_scale_arcsec)
    deltas = np.linspace(0.0, 1.0, n_delta)
    s = sim.stamp_size_px
    init = EnhancedGalaxyNN(4).init(jax.random.key(seed), jnp.zeros((1, s, s), jnp.float32))["params"]
    nets = {"random": {k: init[k] for k in ("conv1", "conv2")}}
    if trained_conv is not None:
        nets["trained"] = dict(trained_conv)
    arrays: dict[str, np.ndarray] = {"subpixel_deltas_px": deltas, "subpixel_sizes_arcsec": np.asarray(sizes_arcsec)}
    summary: dict[str, Any] = {"layers": list(SPATIAL_LAYERS), "sizes_arcsec": list(sizes_arcsec),
                               "shear_step": SHEAR_STEP}
    for net, params in nets.items():
        for pool in ("avg", "blur"):
            per = {key: [] for key in ("rel_change", "shear_signal", "energy_var", "energy_shear")}
            for size in sizes_arcsec:
                rows = [[1.0, d * sim.pixel_scale_arcsec, 0.0, size, 0.0, 0.0] for d in deltas]
                rows += [[1.0, 0.0, 0.0, size, SHEAR_STEP, 0.0], [1.0, 0.0, 0.0, size, -SHEAR_STEP, 0.0]]
                m = _metrics(subpixel_response(params, rend.render(np.asarray(rows)), pool), n_delta)
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


# --------------------------------------------------------------------------- vision


@functools.partial(jax.jit, static_argnames="model")
def _saliency(model: nn.Module, params: Any, x: jax.Array) -> jax.Array:
    return jax.grad(lambda img: model.apply({"params": params}, img[None])[0, 0])(x)


def saliency(trained: Any, x: np.ndarray) -> np.ndarray:
    """``d g1_hat / d x`` (S, S) of a trained network at stamp ``x``, g1 in label units."""
    grad = _saliency(trained.model, trained.params, jnp.asarray(x, jnp.float32))
    return np.asarray(grad, np.float64) * float(np.asarray(trained.label_std)[0])


def ml_weight_map(G: np.ndarray, k: int = 4) -> np.ndarray:
    """``d theta_k,ML / d x`` (S, S): row ``k`` of ``(G^T G)^-1 G^T`` for ``G`` (S, S, p)."""
    g = G.reshape(-1, G.shape[-1])
    return np.linalg.solve(g.T @ g, g.T)[k].reshape(G.shape[:2])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation coefficient of two maps over pixels."""
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def run_vision(trained: Mapping[float, Any], grid: tuple[float, ...], clean: np.ndarray, noise: np.ndarray,
               G_full: np.ndarray, n_vision: int, pick: int = 0, n_channels: int = 3) -> dict:
    """Saliency vs ML weight map (all noise levels) and feature maps (lowest-noise network).

    Per galaxy ``i < n_vision`` and noise level: ``corr_ml`` = Pearson(saliency,
    ML weight map); ``corr_template`` = Pearson(saliency, dI/dg1); ``response`` =
    ``sum(saliency * dI/dg1)`` (the linearised d g1_hat / d g1; 1 for an unbiased
    estimator); ``noise_ratio`` = ``|saliency| / |ML weight map|`` (the network's
    linear noise standard deviation over the CRLB's); ``efficiency`` =
    ``(response / noise_ratio)^2``, the CRLB variance over the network's linear noise
    variance once its response is calibrated to 1; it is <= 1 for a network blind to
    flux, centroid and size (as the ML estimator is) and can exceed 1 only by responding
    to them, i.e. at the price of a nuisance-dependent bias. Maps are
    stored for galaxy ``pick``.
    """
    n = min(n_vision, len(clean))
    keys = ("corr_ml", "corr_template", "response", "noise_ratio", "efficiency")
    stats = {key: np.zeros((len(grid), n)) for key in keys}
    sal_maps = []
    w_ml = [ml_weight_map(G_full[i]) for i in range(n)]
    for k, sigma in enumerate(grid):
        for i in range(n):
            x = clean[i] + sigma * noise[i]
            sal = saliency(trained[sigma], x)
            stats["corr_ml"][k, i] = pearson(sal, w_ml[i])
            stats["corr_template"][k, i] = pearson(sal, G_full[i, ..., 4])
            stats["response"][k, i] = float(np.sum(sal * G_full[i, ..., 4]))
            stats["noise_ratio"][k, i] = float(np.linalg.norm(sal) / np.linalg.norm(w_ml[i]))
            stats["efficiency"][k, i] = (stats["response"][k, i] / stats["noise_ratio"][k, i]) ** 2
            if i == pick:
                sal_maps.append(sal)
    low = trained[grid[0]]
    x = clean[pick] + grid[0] * noise[pick]
    f = low.model.apply({"params": low.params}, jnp.asarray(x, jnp.float32)[None], return_features=True)
    arrays = {"vision_image": x, "vision_saliency": np.stack(sal_maps), "vision_ml_weight": w_ml[pick],
              "vision_template": G_full[pick, ..., 4]}
    for block, layers in (("relu1", ("conv1", "relu1", "pool1")), ("relu2", ("conv2", "relu2", "pool2"))):
        var = np.asarray(f[block][0]).var(axis=(0, 1))
        chans = np.sort(np.argsort(var)[::-1][:n_channels])
        for layer in layers:
            arrays[f"vision_fmap_{layer}"] = np.moveaxis(np.asarray(f[layer][0])[..., chans], -1, 0)
        arrays[f"vision_channels_{block}"] = chans
    arrays |= {f"vision_{key}": v for key, v in stats.items()}
    summary = {
        noise_tag(s): {key: {"mean": float(v[k].mean()), "std": float(v[k].std()),
                             "median": float(np.median(v[k]))} for key, v in stats.items()}
        for k, s in enumerate(grid)
    } | {"n_galaxies": n, "galaxy_index": pick, "saliency_units": "g1 per image unit"}
    return {"summary": summary, "arrays": arrays}

"""Probes: empirical counterparts of the per-layer Fisher diagnosis.

The diagnosis is :mod:`shearbridge.diagnosis.fisher`. Small decoders trained on each layer's frozen
activations to predict ``(g1, g2)``: a ridge-regularised linear probe (closed form, ridge strength
chosen on a validation split) and a one-hidden-layer MLP (optax AdamW). Layers wider than ``dim``
are first compressed by signed feature hashing (a fixed, seeded random linear sketch: feature ``i``
is added with sign ``s_i`` to bucket ``b_i``; Weinberger et al. 2009), so every probe sees at most
``dim`` inputs. The sub-pixel sensitivity of the pooling and the saliency maps are in
:mod:`shearbridge.diagnosis.subpixel` and :mod:`shearbridge.diagnosis.vision`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from shearbridge.config import noise_tag, seeds
from shearbridge.diagnosis.features import LAYERS

__all__ = ["hash_layout", "layer_activations", "mlp_probe", "ridge_probe", "run_probes"]

# --------------------------------------------------------------------------- probes


def hash_layout(d: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket (d,) in ``[0, dim)`` and sign (d,) in ``{-1, +1}`` of a signed feature hash."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, d, dim]))
    return rng.integers(0, dim, size=d).astype(np.int32), rng.choice([-1.0, 1.0], size=d).astype(
        np.float32
    )


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


def layer_activations(
    trained: Any, images: np.ndarray, dim: int, seed: int, batch: int = 250
) -> dict:
    """Each layer's activations (N, <= dim) float32 for stamps ``images`` (N, S, S)."""
    shapes = jax.eval_shape(
        lambda x: trained.model.apply({"params": trained.params}, x, return_features=True),
        jax.ShapeDtypeStruct((1, *images.shape[1:]), jnp.float32),
    )
    sizes = {k: int(np.prod(shapes[k].shape[1:])) for k in LAYERS if k != "input"}
    sizes["input"] = int(np.prod(images.shape[1:]))
    layouts = {
        k: tuple(map(jnp.asarray, hash_layout(d, dim, seed))) for k, d in sizes.items() if d > dim
    }
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
    xtr: np.ndarray,
    ytr: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    *,
    seed: int,
    lambdas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),
    val_fraction: float = 0.2,
) -> dict:
    """Linear probe ``y ~ X beta + c``, ridge strength ``lambda * n`` picked on a validation split.

    Returns
    -------
    dict
        ``rmse`` (per target column, test set, label units) and the chosen ``lambda``.
    """
    xtr, xte = _standardise(np.asarray(xtr, np.float64), np.asarray(xte, np.float64))
    ytr, yte = np.asarray(ytr, np.float64), np.asarray(yte, np.float64)
    perm = seeds.rng(seed, "probe_permutation").permutation(len(xtr))
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
        loss, g = jax.value_and_grad(
            lambda q: jnp.mean((mlp.apply({"params": q}, x[i]) - y[i]) ** 2)
        )(p)
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), idx)
    return params, losses


def mlp_probe(
    xtr: np.ndarray,
    ytr: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    *,
    seed: int,
    hidden: int = 64,
    steps: int = 300,
    lr: float = 1e-3,
    batch: int = 128,
) -> dict:
    """One-hidden-layer ReLU MLP probe (AdamW, cosine decay, MSE on standardised targets).

    Returns ``rmse`` per target column on the test set (label units) and the final
    training loss (standardised units).
    """
    xtr, xte = _standardise(np.asarray(xtr, np.float32), np.asarray(xte, np.float32))
    ym, ys = ytr.mean(0), ytr.std(0)
    key = jax.random.key(seed)
    params, losses = _fit_mlp(
        jnp.asarray(xtr, jnp.float32),
        jnp.asarray((ytr - ym) / ys, jnp.float32),
        key,
        lr,
        hidden,
        steps,
        min(batch, len(xtr)),
    )
    pred = np.asarray(
        _MLP(hidden, ytr.shape[1]).apply({"params": params}, jnp.asarray(xte, jnp.float32))
    )
    err = pred * ys + ym - yte
    return {"rmse": np.sqrt(np.mean(err**2, axis=0)), "final_loss": float(losses[-1])}


def run_probes(
    trained: Mapping[float, Any],
    grid: tuple[float, ...],
    train_images: Callable[[float], np.ndarray],
    ytr: np.ndarray,
    test_images: Callable[[float], np.ndarray],
    yte: np.ndarray,
    *,
    seed: int,
    dim: int,
    mlp_steps: int,
    progress: Any = None,
) -> dict:
    """Linear and MLP probe test RMSE on (g1, g2) for every layer and noise level.

    ``trained[sigma]`` is the EnhancedGalaxyNN trained at noise ``sigma`` (each of ``grid``);
    ``train_images(sigma)``, ``test_images(sigma)`` the probes' noisy stamps (N, S, S) and
    ``ytr``, ``yte`` their (g1, g2) (N, 2). Activations are feature-hashed to ``dim`` with
    ``seed``; the probes at the ``k``-th level are seeded ``seed + k``; ``progress``
    (optional) gets ``update(1)`` per level.
    """
    lin = np.zeros((len(grid), len(LAYERS), 2))
    mlp = np.zeros_like(lin)
    net = np.zeros((len(grid), 2))
    for k, sigma in enumerate(grid):
        seed_k = seed + k
        a_tr = layer_activations(trained[sigma], train_images(sigma), dim, seed)
        a_te = layer_activations(trained[sigma], test_images(sigma), dim, seed)
        for j, layer in enumerate(LAYERS):
            lin[k, j] = ridge_probe(a_tr[layer], ytr, a_te[layer], yte, seed=seed_k)["rmse"]
            mlp[k, j] = mlp_probe(a_tr[layer], ytr, a_te[layer], yte, seed=seed_k, steps=mlp_steps)[
                "rmse"
            ]
        net[k] = np.sqrt(
            np.mean((trained[sigma].predict(test_images(sigma))[:, :2] - yte) ** 2, axis=0)
        )
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
        "n_train": len(ytr),
        "n_test": len(yte),
        "dim": dim,
        "mlp_steps": mlp_steps,
        "method": (
            "ridge (closed form, lambda on a 20% validation split) and MLP (64 ReLU units, AdamW "
            "1e-3 cosine, batch 128) on standardised activations; layers wider than dim "
            "feature-hashed to dim"
        ),
    }
    return {
        "summary": summary,
        "arrays": {"probe_rmse_linear": lin, "probe_rmse_mlp": mlp, "probe_rmse_network": net},
    }

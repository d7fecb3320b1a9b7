"""Training from clean stamps with fresh noise: one network for every PSF and noise level (pure).

The per-level networks of the study (:mod:`shearbridge.train.loop`) see one fixed noise field per
training stamp, at one noise level. :func:`train_fresh` instead stores each training galaxy
noise-free, with its PSF image, and at every step

* draws a batch of galaxies and, per stamp, a noise sigma log-uniform in
  ``[noise_min, noise_max]`` (the whole grid, survey S/N included);
* adds a noise field drawn from ``fold_in(key, step)``
  (:func:`shearbridge.train.augment.fresh_noise`): no field is ever used twice, so the network
  cannot memorise noise, and the same seed gives the same run;
* weighs each stamp's squared error by its own bound, ``|g_hat - g|^2 / (sigma_n c)^2`` with ``c``
  the galaxy's Cramér–Rao bound at unit noise, so low-noise stamps, whose errors are thousands of
  times smaller, are not drowned by the noisy ones; and fits the predicted uncertainty ``s`` by the
  Gaussian likelihood of the (gradient-stopped) residual, ``|r|^2 / 2 s^2 + 2 log s``;
* clips the gradient's global norm at ``clip_norm`` (0: no clipping): a batch holding one
  low-noise stamp far from its bound has a gradient thousands of times the typical one. The
  uncertainty head's parameters are clipped as a group of their own (:func:`param_groups`).

``fresh_noise=False`` is the ablation: each galaxy keeps one noise sigma and one noise field for the
whole run (a fixed noisy training set, as the per-level networks have), drawn from the galaxy's
index.

No rotation or flip augmentation: :class:`~shearbridge.models.psfnet.PSFNet` is D4-equivariant by
construction, so a transformed copy would give the same gradient up to round-off.

The validation set is fixed: its own galaxies (never training ones), one noise sigma and one noise
field each, drawn once from the validation key. Its loss is recorded every ``eval_every`` steps
(the learning curve); the returned parameters are those of the last step (the learning rate decays
to zero on a cosine, so the last step is the converged one; the curve shows whether it overfits).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from shearbridge.config import ConfigError
from shearbridge.config.population import FreshConfig
from shearbridge.models.predict import map_batches
from shearbridge.models.psfnet import UNCERTAINTY_PREFIX
from shearbridge.train.augment import fresh_noise

__all__ = [
    "FreshConfig",
    "CleanSet",
    "train_fresh",
    "validation_errors",
    "noisy_copy",
    "bound_weighted_loss",
    "param_groups",
]


@dataclass(frozen=True)
class CleanSet:
    """Noise-free training or validation galaxies: stamps and PSF images ``(N, S, S)`` float32, true
    shears ``g (N, 2)`` and the unit-noise bound ``c (N,)`` (the mean of the g1 and g2 bounds)."""

    stamps: np.ndarray
    psfs: np.ndarray
    g: np.ndarray
    c: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.stamps)
        if self.stamps.ndim != 3 or self.psfs.shape != self.stamps.shape:
            raise ValueError(
                f"stamps and PSF images must share a shape (N, S, S), got {self.stamps.shape}, "
                f"{self.psfs.shape}"
            )
        if self.g.shape != (n, 2) or self.c.shape != (n,):
            raise ValueError(
                f"g must be (N, 2) and c (N,) for N = {n}, got {self.g.shape}, {self.c.shape}"
            )
        for name in ("stamps", "psfs", "g", "c"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"clean set {name} contain NaN or inf")
        if not np.all(self.c > 0):
            raise ValueError("clean set bounds c must be positive")

    def __len__(self) -> int:
        return len(self.stamps)


def _log_uniform(key: jax.Array, n: int, lo: float, hi: float) -> jax.Array:
    return jnp.exp(jax.random.uniform(key, (n,), jnp.float32, math.log(lo), math.log(hi)))


def noisy_copy(
    clean: CleanSet, key: jax.Array, noise_min: float, noise_max: float
) -> tuple[np.ndarray, np.ndarray]:
    """One noisy realisation of every stamp, sigma log-uniform per stamp: ``(stamps, sigma)``, drawn
    from ``key`` alone (the validation set; deterministic)."""
    k_sigma, k_noise = jax.random.split(key)
    sigma = _log_uniform(k_sigma, len(clean), noise_min, noise_max)
    noise = fresh_noise(k_noise, 0, clean.stamps.shape, sigma)
    return np.asarray(clean.stamps + noise), np.asarray(sigma)


def bound_weighted_loss(
    pred: jax.Array, g: jax.Array, bound: jax.Array, unc_weight: float, bound_weighted: bool = True
) -> tuple[jax.Array, jax.Array]:
    """``(loss, point part)`` of a batch: the squared error over the stamp's bound (or the plain
    squared error) plus ``unc_weight`` times the Gaussian likelihood of the stopped residual."""
    r = pred[:, :2] - g
    sq = jnp.sum(r**2, axis=-1)
    point = jnp.mean(sq / bound**2) if bound_weighted else jnp.mean(sq)
    log_s = pred[:, 2]
    nll = jnp.mean(jax.lax.stop_gradient(sq) * 0.5 * jnp.exp(-2.0 * log_s) + 2.0 * log_s)
    return point + unc_weight * nll, point


def param_groups(params: Any) -> Any:
    """``"uncertainty"`` for the uncertainty head's parameters (a name on the path starts with
    :data:`~shearbridge.models.psfnet.UNCERTAINTY_PREFIX`), ``"point"`` for the rest: each group is
    clipped on its own, so the shear loss's large gradients never scale the likelihood's down."""

    def label(path: tuple[Any, ...], _: Any) -> str:
        names = [str(getattr(k, "key", "")) for k in path]
        return "uncertainty" if any(n.startswith(UNCERTAINTY_PREFIX) for n in names) else "point"

    return jax.tree_util.tree_map_with_path(label, params)


def _mask(params: Any) -> Any:
    """Weight decay on kernels only (not on biases, scales or the standardisation constants)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", "") == "kernel", params
    )


def _keys(cfg: FreshConfig) -> jax.Array:
    """The run's four keys (batches, sigmas, noise, validation), from ``cfg.seed`` alone."""
    return jax.random.split(jax.random.PRNGKey(cfg.seed), 4)


def validation_errors(model: Any, params: dict, val: CleanSet, cfg: FreshConfig) -> np.ndarray:
    """Per validation stamp, ``|g_hat - g|^2 / (sigma c)^2`` on the fixed validation noise that
    :func:`train_fresh` draws for ``cfg`` (its seed): the terms whose mean is ``val_point``
    (float64 here, so the mean agrees with the float32 history to ~1e-6 relative)."""
    val_x, val_sigma = noisy_copy(val, _keys(cfg)[3], cfg.noise_min, cfg.noise_max)
    predict = jax.jit(model.apply)
    pred = map_batches(lambda x, ps, s: predict(params, x, ps, s), val_x, 512, val.psfs, val_sigma)
    r = np.asarray(pred, dtype=np.float64)[:, :2] - np.asarray(val.g, dtype=np.float64)
    bound = np.asarray(val_sigma, dtype=np.float64) * np.asarray(val.c, dtype=np.float64)
    return np.sum(r**2, axis=1) / bound**2


def train_fresh(
    model: Any,
    params: dict,
    train: CleanSet,
    val: CleanSet,
    cfg: FreshConfig,
    progress: Callable[[int], Any] | None = None,
) -> tuple[dict, dict[str, Any]]:
    """Train ``model`` (called as ``model.apply(params, stamps, psfs, sigma)`` -> ``(B, 3)``) from
    ``params`` (already :meth:`data_init`-ed) on fresh noise (module docstring).

    Returns the last step's parameters and a history: ``step``, ``val_loss``, ``val_point``
    (the validation bound-weighted squared error, i.e. the mean ``(error/CRLB)^2``), ``train_loss``
    (mean over the steps since the last evaluation), ``seconds``. ``progress(n)`` after every ``n``
    steps.
    """
    cfg.validate()
    if len(train) < cfg.batch_size:
        raise ConfigError(
            f"the training set ({len(train)}) is smaller than one batch ({cfg.batch_size})"
        )
    k_batch, k_sigma, k_noise, k_val = _keys(cfg)
    schedule = optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)
    opt = optax.multi_transform(
        {
            group: optax.chain(
                optax.clip_by_global_norm(cfg.clip_norm) if cfg.clip_norm > 0 else optax.identity(),
                optax.adamw(schedule, weight_decay=cfg.weight_decay, mask=_mask),
            )
            for group in ("point", "uncertainty")
        },
        param_groups(params),
    )
    opt_state = opt.init(params)
    stamps, psfs = jnp.asarray(train.stamps), jnp.asarray(train.psfs)
    g_all, c_all = jnp.asarray(train.g, jnp.float32), jnp.asarray(train.c, jnp.float32)
    bs = cfg.batch_size
    fixed_sigma = _log_uniform(k_sigma, len(train), cfg.noise_min, cfg.noise_max)

    @jax.jit
    def step(params, opt_state, i):
        idx = jax.random.randint(jax.random.fold_in(k_batch, i), (bs,), 0, stamps.shape[0])
        if cfg.fresh_noise:
            sigma = _log_uniform(jax.random.fold_in(k_sigma, i), bs, cfg.noise_min, cfg.noise_max)
            x = stamps[idx] + fresh_noise(k_noise, i, (bs,) + stamps.shape[1:], sigma)
        else:  # the ablation: one sigma and one field per galaxy, reused whenever it is drawn
            sigma = fixed_sigma[idx]
            x = stamps[idx] + jax.vmap(
                lambda j, s: fresh_noise(k_noise, j, (1,) + stamps.shape[1:], s[None])[0]
            )(idx, sigma)

        def loss_fn(p):
            pred = model.apply(p, x, psfs[idx], sigma)
            return bound_weighted_loss(
                pred, g_all[idx], sigma * c_all[idx], cfg.uncertainty_weight, cfg.bound_weighted
            )

        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    val_x, val_sigma = noisy_copy(val, k_val, cfg.noise_min, cfg.noise_max)
    predict = jax.jit(model.apply)

    def evaluate(p) -> tuple[float, float]:
        pred = map_batches(lambda x, ps, s: predict(p, x, ps, s), val_x, 512, val.psfs, val_sigma)
        loss, point = bound_weighted_loss(
            jnp.asarray(pred),
            jnp.asarray(val.g),
            jnp.asarray(val_sigma * val.c),
            cfg.uncertainty_weight,
        )
        return float(loss), float(point)

    history: dict[str, Any] = {
        "step": [],
        "val_loss": [],
        "val_point": [],
        "train_loss": [],
        "seconds": [],
    }
    t0, since = time.perf_counter(), []
    for i in range(cfg.steps):
        params, opt_state, loss = step(params, opt_state, i)
        since.append(loss)
        if (i + 1) % cfg.eval_every == 0 or i + 1 == cfg.steps:
            vl, vp = evaluate(params)
            history["step"].append(i + 1)
            history["val_loss"].append(vl)
            history["val_point"].append(vp)
            history["train_loss"].append(float(np.mean(np.asarray(jnp.stack(since)))))
            history["seconds"].append(time.perf_counter() - t0)
            since = []
            if not np.isfinite(vl):
                raise FloatingPointError(
                    f"validation loss is {vl} at step {i + 1}: training diverged"
                )
            if progress is not None:
                progress(
                    history["step"][-1] - (history["step"][-2] if len(history["step"]) > 1 else 0)
                )
    history["config"] = dataclasses.asdict(cfg)
    return params, history

"""Symmetries of the shear problem and fresh training noise (pure JAX; groundwork of issue 17).

**D4 augmentation.** Turning a stamp by a multiple of 90 degrees, with or without a mirror, gives
another valid stamp whose shear is known exactly: a shear is a spin-2 quantity, ``g -> g e^{2 i
theta}`` under a rotation by ``theta``, so a quarter turn flips the sign of both components, and
the mirror ``x -> -x`` (the columns reversed) keeps ``g1`` and flips ``g2``. For the element
``(k, mirror)`` -- mirror first, then ``k`` quarter turns -- the labels become
``g1' = (-1)^k g1``, ``g2' = (-1)^(k + mirror) g2``; sizes and fluxes are unchanged, and a PSF
image given with the stamp turns with it. A network trained on all eight copies learns an
estimator that commutes with the group, the way a D4-equivariant design would by construction.

**Fresh noise.** A training step adds noise drawn from ``fold_in(key, step)``, split over the
stamps of the batch: no two steps, and no two stamps of one step, share a field, and a run with
the same key and step numbers draws the same fields (resumable, deterministic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["D4", "d4_images", "d4_shear", "random_d4", "fresh_noise"]

#: The eight elements ``(quarter turns, mirror)`` of the symmetry group of the square pixel grid.
D4 = tuple((k, mirror) for mirror in (False, True) for k in range(4))


def d4_images(x: jax.Array, k: int, mirror: bool) -> jax.Array:
    """Stamps ``(..., S, S)`` mirrored (columns reversed) if ``mirror``, then turned by ``k``
    quarter turns (``jnp.rot90`` over the last two axes)."""
    if mirror:
        x = jnp.flip(x, axis=-1)
    return jnp.rot90(x, k % 4, axes=(-2, -1))


def d4_shear(g: jax.Array, k: int, mirror: bool) -> jax.Array:
    """The shear ``(..., 2)`` of a stamp after :func:`d4_images` ``(k, mirror)`` (spin 2)."""
    s1 = (-1.0) ** (k % 4)
    s2 = s1 * (-1.0 if mirror else 1.0)
    return g * jnp.asarray([s1, s2], dtype=g.dtype)


def random_d4(key: jax.Array, images: jax.Array, shears: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each stamp of a batch ``(B, S, S)`` and its shear ``(B, 2)`` under an element of :data:`D4`
    drawn from ``key``, independently per stamp (all eight copies are formed and one is selected:
    cheap for small stamps, and one compiled function)."""
    idx = jax.random.randint(key, (images.shape[0],), 0, len(D4))
    imgs = jnp.stack([d4_images(images, k, m) for k, m in D4], axis=1)  # (B, 8, S, S)
    gs = jnp.stack([d4_shear(shears, k, m) for k, m in D4], axis=1)  # (B, 8, 2)
    rows = jnp.arange(images.shape[0])
    return imgs[rows, idx], gs[rows, idx]


def fresh_noise(
    key: jax.Array, step: int | jax.Array, shape: tuple[int, ...], sigma: jax.Array
) -> jax.Array:
    """White Gaussian noise ``(B, S, S)`` for training step ``step``, stamp ``b`` scaled by
    ``sigma[b]``: from ``split(fold_in(key, step), B)``, so every step and stamp has its own
    field."""
    keys = jax.random.split(jax.random.fold_in(key, step), shape[0])
    noise = jax.vmap(lambda kk: jax.random.normal(kk, shape[1:], dtype=jnp.float32))(keys)
    return noise * jnp.asarray(sigma, jnp.float32).reshape((-1,) + (1,) * (len(shape) - 1))

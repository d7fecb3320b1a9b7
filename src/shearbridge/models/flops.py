"""The one FLOP counter: XLA's cost analysis of a compiled computation.

``jax.stages.Compiled.cost_analysis()['flops']``; a multiply-add counts as 2. Used for
the ablation's forward cost, the learning curves' training compute and the timing
study's training step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FLOPS_METHOD", "compiled_flops", "forward_flops"]

FLOPS_METHOD = (
    "XLA cost analysis (jax.stages.Compiled.cost_analysis()['flops']) of the jitted "
    "float32 forward pass of one stamp (batch 1); a multiply-add counts as 2"
)


def compiled_flops(compiled: Any) -> float:
    """FLOPs of one call of a compiled computation (NaN when XLA reports none)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per device
        cost = cost[0]
    return float((cost or {}).get("flops", float("nan")))


def forward_flops(model: Any, params: Any, stamp_size: int, batch: int = 1) -> float:
    """FLOPs per stamp of one jitted float32 forward pass of ``model`` on ``batch`` stamps of
    ``stamp_size`` x ``stamp_size`` pixels (the count depends only on the parameters' shapes).

    Raises
    ------
    RuntimeError
        XLA reported no positive FLOP count.
    """
    x = jnp.zeros((batch, stamp_size, stamp_size), jnp.float32)
    compiled = jax.jit(lambda p, im: model.apply({"params": p}, im)).lower(params, x).compile()
    flops = compiled_flops(compiled)
    if not np.isfinite(flops) or flops <= 0:
        raise RuntimeError("XLA's cost analysis reported no FLOP count for the forward pass")
    return flops / batch

"""Learning curves: snapshot discovery, FLOP counting, matched-compute read-off."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shearbridge.models.flops import forward_flops
from shearbridge.steps.learning import snapshots
from shearbridge.summaries.learning import matched_compute
from shearbridge.models import get_model


def test_snapshots_are_found_and_sorted_by_epoch(tmp_path):
    for e in (10, 2, 1):
        (tmp_path / f"params_epoch{e:03d}.msgpack").write_bytes(b"")
    (tmp_path / "model.msgpack").write_bytes(b"")
    (tmp_path / "params_epochXYZ.msgpack").write_bytes(b"")
    assert [e for e, _ in snapshots(tmp_path)] == [1, 2, 10]
    assert snapshots(tmp_path / "missing") == []


def test_forward_flops_match_the_analytic_count_of_enhancedgalaxynn():
    """2 H W K^2 Cin Cout per conv and 2 Nin Nout per dense: 8.42 MFLOP per 53x53 stamp.
    XLA skips the SAME padding's zeros, so its count is a little lower (within 3%)."""
    model = get_model("enhanced", 4)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 53, 53)))["params"]
    analytic = 2 * 53 * 53 * 9 * 1 * 16 + 2 * 26 * 26 * 9 * 16 * 32 + 2 * 5408 * 128 + 2 * 128 * 4
    got = forward_flops(model, params, 53)
    assert 0.97 * analytic < got < 1.03 * analytic, (got, analytic)


def _curve(flops, ratios, err=0.1):
    return {
        "points": [{"train_flops": f, "ratio": r, "ratio_err": err} for f, r in zip(flops, ratios)]
    }


def test_matched_compute_interpolates_at_the_common_budget():
    """Power-law curves are straight in log-log: interpolation there is exact."""
    f = np.array([1e9, 1e10, 1e11])
    a = _curve(f, 100 * (f / 1e9) ** -0.5)
    b = _curve(f[:2] * 3, 50 * (f[:2] * 3 / 1e9) ** -1.0)  # reaches 3e10 only
    out = matched_compute({"a": a, "b": b})
    assert out["train_flops"] == pytest.approx(3e10)
    assert out["ratio"]["a"] == pytest.approx(100 * 30**-0.5, rel=1e-9)
    assert out["ratio"]["b"] == pytest.approx(50 / 30, rel=1e-9)


def test_matched_compute_refuses_curves_that_do_not_overlap():
    with pytest.raises(ValueError, match="beyond the common budget"):
        matched_compute({"a": _curve([1e9, 2e9], [3, 2]), "b": _curve([5e9, 6e9], [3, 2])})
    with pytest.raises(ValueError, match="at least one"):
        matched_compute({})

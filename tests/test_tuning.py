"""Choosing the weight fractions on the validation split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shearbridge.config import SimConfig
from shearbridge.diagnosis import tuning as T
from shearbridge.sim import stamps
from shearbridge.train.data import split_indices


class _Data:
    """A DatasetLike of rendered Gaussian galaxies: ``clean + sigma * noise``."""

    def __init__(self, sim: SimConfig, n: int, seed: int):
        self.labels = stamps.draw_population(sim, n, np.random.default_rng(seed))
        self.clean = stamps.render_rows(sim, self.labels, range(n)).astype(np.float32)
        self.noise = (
            np.random.default_rng(seed + 1).normal(size=self.clean.shape).astype(np.float32)
        )
        self.calls: list[float] = []

    def images(self, noise_sigma: float) -> np.ndarray:
        self.calls.append(noise_sigma)
        return self.clean + np.float32(noise_sigma) * self.noise

    def targets(self, n_outputs: int) -> np.ndarray:
        return np.stack([self.labels["g1"], self.labels["g2"]], axis=1)[:, :n_outputs]

    def __len__(self) -> int:
        return len(self.clean)


SIM = SimConfig(stamp_size_px=21, offset_max_arcsec=0.1)


def test_candidate_grid():
    grid = T.candidate_grid()
    assert grid[:4] == [(1.0,), (0.5,), (0.25,), (0.125,)]
    assert len(grid) == 10 and (1.0, 0.25) in grid
    assert all(list(c) == sorted(c, reverse=True) for c in grid)
    assert len(T.candidate_grid(max_size=3)) == 14
    with pytest.raises(ValueError):
        T.candidate_grid((1.0, 0.0))


def test_scores_on_a_hand_made_table():
    # candidate a wins at the low level by a factor 2, b at the high level by 10%
    rows = [
        {"noise_sigma": 1e-5, "fractions": ("a",), "val_rmse": 1e-4},
        {"noise_sigma": 1e-5, "fractions": ("b",), "val_rmse": 2e-4},
        {"noise_sigma": 1e-2, "fractions": ("a",), "val_rmse": 0.055},
        {"noise_sigma": 1e-2, "fractions": ("b",), "val_rmse": 0.050},
    ]
    bound = T.score_candidates(rows, "bound")
    assert bound[("a",)] == pytest.approx(10 + 5.5) and bound[("b",)] == pytest.approx(20 + 5.0)
    assert min(bound, key=bound.get) == ("a",)  # RMSE / sigma: every level counts alike
    total = T.score_candidates(rows, "sum")
    assert min(total, key=total.get) == ("b",)
    assert T.score_candidates(rows, "quadrature")[("b",)] == pytest.approx(np.hypot(2e-4, 0.05))
    with pytest.raises(ValueError):
        T.score_candidates(rows, "median")


@pytest.mark.pipeline
def test_tuner_picks_the_known_best():
    """Galaxies of 2.5 px sigma on 21 px stamps: without noise the tight weight (0.25) is the
    better (less truncation bias; measured validation RMSE 0.006 against 0.020), at noise 3e-3
    the matched weight (1.0: 0.036 against 0.061)."""
    sim = dataclasses.replace(SIM, size_scale_arcsec=0.35, size_min_arcsec=0.175)
    data = _Data(sim, 200, 7)
    res = T.tune_weight_fractions(
        data, [1e-6, 3e-3], sim.psf_sigma_px, 0.25, 0, candidates=[(1.0,), (0.25,)]
    )
    assert res["best_per_level"] == {1e-6: (0.25,), 3e-3: (1.0,)}
    rmse = {(r["noise_sigma"], r["fractions"]): r["val_rmse"] for r in res["table"]}
    assert (
        rmse[1e-6, (1.0,)] > 2 * rmse[1e-6, (0.25,)]
        and rmse[3e-3, (0.25,)] > 1.3 * rmse[3e-3, (1.0,)]
    )
    # RMSE / sigma weighs the noise-free level; the plain sum the noisy one
    assert res["choice"] == res["choices"]["bound"] == (0.25,) and res["choices"]["sum"] == (1.0,)


@pytest.mark.pipeline
def test_uses_the_trainers_split_and_is_deterministic():
    data = _Data(dataclasses.replace(SIM, size_scale_arcsec=0.3), 80, 3)
    kw = dict(
        noise_levels=[1e-4, 1e-3],
        psf_sigma_px=SIM.psf_sigma_px,
        val_fraction=0.2,
        seed=5,
        candidates=[(1.0,), (1.0, 0.25)],
    )
    a = T.tune_weight_fractions(data, **kw)
    b = T.tune_weight_fractions(data, **kw)
    assert a == b and data.calls == [1e-4, 1e-3] * 2
    tr, va = split_indices(80, 0.2, 5)
    assert {(r["n_fit"], r["n_val"]) for r in a["table"]} == {(len(tr), len(va))}
    assert set(a["choices"]) == set(T.SCORES) and a["choice"] == a["choices"]["bound"]
    # the pair contains the single: its least-squares fit is at least as good on the training part
    assert len(a["table"]) == 4
    few = T.validation_table(data, [1e-3], SIM.psf_sigma_px, 0.2, 5, [(1.0,)], n_fit=30)
    assert few[0]["n_fit"] == 30

"""The timing study: robust statistics, interleaving, and a tiny end-to-end run.

No assertion is about how fast anything is (speed lives in tests/benchmarks);
these check what is recorded: medians and spreads, paired ratios, the order of
the rounds, the hardware record, and that each timed call computed the real result.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from shearbridge.steps import timing as T
from shearbridge.steps.timing_jobs import load_network
from shearbridge.cli import build_parser
from shearbridge.config import Profile, SimConfig, get_profile, noise_tag
from shearbridge.io import read_json
from shearbridge.stats.resample import ratio_stats, robust_stats

pytestmark = pytest.mark.pipeline  # trainings or pipeline steps end to end: not in `make check`

TINY = Profile(
    name="tinytiming", n_train=256, n_test=160, n_crlb=32, n_shear_pairs=8, epochs=1, bootstrap=10
)


def test_robust_stats_on_known_values():
    r = robust_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert r["median"] == 3.0
    assert r["spread"] == pytest.approx(1.4826 * 1.0)  # MAD of |v - 3| = (2,1,0,1,97) -> 1
    assert r["err"] == pytest.approx(1.2533 * r["spread"] / math.sqrt(5))
    assert r["n"] == 5 and r["values"] == [1.0, 2.0, 3.0, 4.0, 100.0]
    with pytest.raises(ValueError, match="finite"):
        robust_stats([1.0, float("nan")])
    with pytest.raises(ValueError, match="finite"):
        robust_stats([])


def test_ratio_stats_are_paired_per_round():
    # a load change hits both methods in the same round: the paired ratio stays exact
    num, den = [10.0, 5.0, 20.0], [2.0, 1.0, 4.0]
    r = ratio_stats(num, den)
    assert r["median"] == 5.0 and r["spread"] == 0.0
    with pytest.raises(ValueError, match="equal lengths"):
        ratio_stats([1.0], [1.0, 2.0])


def test_interleaved_rates_alternate_the_order():
    calls: list[str] = []
    jobs = [T.Job(n, 3, lambda n=n: calls.append(n)) for n in "ABC"]
    rates = T.interleaved_rates(jobs, 3)
    assert calls == list("ABCCBAABC")
    assert all(len(v) == 3 and all(x > 0 and math.isfinite(x) for x in v) for v in rates.values())
    with pytest.raises(ValueError, match="unique"):
        T.interleaved_rates(jobs + [jobs[0]], 1)
    with pytest.raises(ValueError, match="rounds"):
        T.interleaved_rates(jobs, 0)


def test_timing_noise_levels():
    assert T.timing_noise_levels(get_profile("paper")) == [1e-5, 1e-3]
    assert T.timing_noise_levels(Profile(name="a", noise_grid=(1e-4, 1e-2))) == [1e-4, 1e-2]
    assert T.timing_noise_levels(Profile(name="b", noise_grid=(1e-3,))) == [1e-3]


def test_cli_parses_timing():
    args = build_parser().parse_args(
        ["timing", "--networks", "baseline,shapenet", "--threads", "1"]
    )
    assert (args.command, args.networks, args.threads, args.repeats) == (
        "timing",
        "baseline,shapenet",
        1,
        7,
    )


def analytic_train_flops(s: int, n_out: int = 4) -> float:
    """EnhancedGalaxyNN training FLOPs per sample: 3x forward minus conv1's input gradient."""
    h2, h3 = s // 2, s // 4
    conv1, conv2 = 2 * s * s * 9 * 16, 2 * h2 * h2 * 9 * 16 * 32
    dense = 2 * h3 * h3 * 32 * 128 + 2 * 128 * n_out
    return 3 * (conv1 + conv2 + dense) - conv1


@pytest.fixture(scope="module")
def tiny_timing(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SHEARBRIDGE_DATA", str(tmp_path_factory.mktemp("data")))
    from shearbridge.sim.datasets import generate_dataset

    generate_dataset("test", TINY, workers=1, progress=False)
    path = T.run_timing(
        TINY, ["baseline"], repeats=3, n_galaxies=16, train_steps=1, classical=["hsm_regauss"]
    )
    yield path, read_json(path)
    mp.undo()


def test_timing_json_records_every_method_and_level(tiny_timing):
    path, t = tiny_timing
    assert path.name == "timing.json" and path.parent.name == TINY.name
    levels = [noise_tag(s) for s in T.timing_noise_levels(TINY)]
    assert sorted(t["speed"]) == sorted(levels) and t["methods"] == ["baseline", "hsm_regauss"]
    for tag in levels:
        for m, r in t["speed"][tag].items():
            assert len(r["values"]) == 3 and r["median"] == float(np.median(r["values"])) > 0
            assert r["device"] == "cpu"
        net = t["speed"][tag]["baseline"]
        assert net["kind"] == "network" and net["trained"] is False and net["rmse_g_timed"] is None
        # the paired speed-up is the median of the per-round ratios of the recorded rates
        ratios = np.divide(net["values"], t["speed"][tag]["hsm_regauss"]["values"])
        assert t["speedup"][tag]["baseline/hsm_regauss"]["median"] == pytest.approx(
            np.median(ratios)
        )
    assert t["galaxies_per_call"] == {"network": 160, "classical": 16}
    assert t["hardware"]["backend"] == "cpu" and t["hardware"]["cores_used"] >= 1
    assert t["hardware"]["cpu"] and t["versions"]["jax"] and t["profile"] == TINY.name


def test_timed_estimator_calls_compute_the_real_measurement(tiny_timing):
    from shearbridge.sim.datasets import load_dataset
    from shearbridge.estimators.hsm import HSMEstimator

    _, t = tiny_timing
    ds = load_dataset("test", TINY)
    for tag, sigma in t["noise_levels"].items():
        res = HSMEstimator(method="REGAUSS").measure(
            ds.images(sigma)[:16], ds.psf, ds.sim.pixel_scale_arcsec, sigma
        )
        ok = (res.flags == 0) & np.all(np.isfinite(res.g), axis=1)
        rmse = float(np.sqrt(np.mean((res.g[ok] - ds.targets(2)[:16][ok]) ** 2)))
        assert t["speed"][tag]["hsm_regauss"]["rmse_g_timed"] == pytest.approx(rmse, rel=1e-12)


def test_train_step_record_counts_the_real_flops(tiny_timing):
    """XLA's FLOP count of the timed step matches the analytic count of the network
    (within 2 %: XLA skips the SAME-padding zeros and counts the optimiser)."""
    _, t = tiny_timing
    r = t["train_step"]["baseline"]
    assert r["batch_size"] == 128 and r["steps_per_call"] == 1 and len(r["values"]) == 3
    assert r["xla_flops_per_sample"] == pytest.approx(analytic_train_flops(53), rel=0.02)
    assert r["pct_of_matmul"]["median"] > 0 and t["matmul_gflops"]["median"] > 0


def test_untrained_and_trained_networks(tiny_timing, monkeypatch, tmp_path):
    """Without model.msgpack the network is initialised; with one, its parameters are used."""
    import jax

    from shearbridge.layout import Layout
    from shearbridge.models import save_model

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    net = load_network("baseline", TINY, 1e-3, SimConfig())
    assert net["trained"] is False
    params = jax.tree.map(lambda a: a + 1.0, net["params"])
    save_model(
        Layout(TINY).run("baseline", 1e-3) / "model.msgpack",
        params,
        np.zeros(4),
        np.full(4, 2.0),
        {"model": "enhanced", "n_outputs": 4},
    )
    loaded = load_network("baseline", TINY, 1e-3, SimConfig())
    assert loaded["trained"] is True and np.all(loaded["std"] == 2.0)
    np.testing.assert_array_equal(
        loaded["params"]["out"]["bias"], np.asarray(params["out"]["bias"])
    )


def test_misuse_raises():
    with pytest.raises(ValueError, match="at least one network"):
        T.run_timing(TINY, [])
    with pytest.raises(ValueError, match="repeats"):
        T.run_timing(TINY, ["baseline"], repeats=2)

"""Training to convergence: the ladder's configuration, the convergence rule, the store's hash rule
and the reproduction of a committed rung."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shearbridge.config.converge import LADDERS, Ladder, get_ladder
from shearbridge.errors import ConfigError
from shearbridge.layout import Layout
from shearbridge.stats.converge import TOL_FLAT, Z_FLAT, paired_ratio, select_rung

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ configuration
def test_every_ladder_doubles_and_the_survey_ladder_has_three_seeds():
    for ladder in LADDERS.values():
        ladder.validate()
        assert all(b == 2 * a for a, b in zip(ladder.steps, ladder.steps[1:]))
    survey = get_ladder("survey")
    assert len(survey.seeds) >= 3
    assert survey.plan == "paper"
    from shearbridge.config import get_profile
    from shearbridge.config.population import population_plan

    # the first rung is the in-hour budget, so the ladder starts where the build stops
    assert survey.steps[0] == population_plan(get_profile("paper")).fresh.steps


@pytest.mark.parametrize(
    "changes",
    [{"steps": (100, 300)}, {"steps": (100,)}, {"seeds": (0, 0)}, {"name": "a b"}, {"evals": 0}],
)
def test_a_malformed_ladder_is_refused(changes):
    base = dict(name="x", plan="quick", steps=(10, 20), seeds=(0,))
    with pytest.raises(ConfigError):
        Ladder(**{**base, **changes}).validate()


def test_an_unknown_ladder_names_the_known_ones():
    with pytest.raises(ConfigError, match="quick"):
        get_ladder("nope")


def test_store_paths():
    p = Layout.converge_store("survey", 1, 3000, ".msgpack", root="r")
    assert p == Path("r/converged/survey/seed_1/steps_003000.msgpack")
    assert Layout.converge_store("survey", "1", "003000", root="r") == p.with_suffix(".json")


# ------------------------------------------------------------------------------ the rule
def test_paired_ratio_error_matches_the_scatter_of_the_ratio():
    rng = np.random.default_rng(1)
    ratios, errors = [], []
    for _ in range(400):
        common = rng.exponential(1.0, 500)  # the stamps' shared scatter
        a = common * (1 + 0.3 * rng.standard_normal(500)) ** 2
        b = 0.8 * common * (1 + 0.3 * rng.standard_normal(500)) ** 2
        r, s = paired_ratio(a, b)
        ratios.append(r)
        errors.append(s)
    assert abs(np.mean(ratios) - 0.8) < 3 * np.std(ratios) / np.sqrt(len(ratios))
    assert np.std(ratios) == pytest.approx(np.mean(errors), rel=0.1)


def test_paired_ratio_refuses_bad_input():
    with pytest.raises(ValueError, match="paired"):
        paired_ratio(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        paired_ratio(np.array([1.0, np.nan]), np.ones(2))


def _rungs(levels, n=4000, spread=0.2, seed=0):
    """Per-stamp errors of rungs whose mean is ``levels`` (paired: one common factor)."""
    rng = np.random.default_rng(seed)
    common = rng.exponential(1.0, n)
    return [lv * common * (1 + spread * rng.standard_normal(n)) ** 2 for lv in levels]


def test_a_curve_that_halves_then_flattens_is_converged_at_the_flat_doubling():
    steps = [100, 200, 400, 800]
    res = select_rung(steps, _rungs([4.0, 2.0, 1.0, 1.0]))
    assert res["converged"] and res["flat_at"] == 400
    assert res["kept"] in (400, 800)
    assert res["ratios"][0] == pytest.approx(0.5, rel=0.05)
    assert all(res["resolved"])
    assert len(res["point_errors"]) == 4


def test_a_curve_still_falling_is_not_converged_and_keeps_the_longest():
    res = select_rung([100, 200, 400], _rungs([4.0, 2.0, 1.0]))
    assert not res["converged"] and res["flat_at"] is None and res["kept"] == 400


def test_an_unresolved_doubling_is_not_called_flat():
    """Few, widely scattered stamps: the ratio's error exceeds the tolerance, so no verdict."""
    res = select_rung([100, 200], _rungs([1.0, 1.0], n=20, spread=3.0, seed=3))
    assert Z_FLAT * res["ratio_errors"][0] > TOL_FLAT
    assert not res["resolved"][0] and not res["converged"]


def test_select_rung_refuses_a_ladder_out_of_order():
    with pytest.raises(ValueError, match="increase"):
        select_rung([200, 100], _rungs([1.0, 1.0]))


# ------------------------------------------------------------------------------ the store
def test_the_rung_hash_names_seed_and_steps_and_is_stable():
    from shearbridge.steps.converge import rung_hash

    ladder = get_ladder("quick")
    h = rung_hash(ladder, 0, 30)
    assert h == rung_hash(ladder, 0, 30)
    assert len({h, rung_hash(ladder, 0, 60)}) == 2
    with pytest.raises(ConfigError, match="seeds"):
        rung_hash(ladder, 5, 30)


def _committed_quick() -> Path:
    return Layout.converge_store("quick", root=ROOT / "src" / "static")


def test_the_committed_quick_ladder_matches_this_code():
    """The quick ladder is cheap (about 1.5 min): a change to the training code recommits it, so
    that the quick build reads a ladder (`make converge` for the survey ladder; for this one:
    `python -m shearbridge converge rung --ladder quick --seed 0 --steps N` for each N)."""
    from shearbridge.steps.converge import rung_hash

    ladder = get_ladder("quick")
    for seed in ladder.seeds:
        for steps in ladder.steps:
            path = Layout.converge_store("quick", seed, steps, root=ROOT / "src" / "static")
            rec = json.loads(path.read_text())
            assert rec["hash"] == rung_hash(ladder, seed, steps), (seed, steps)


@pytest.mark.pipeline
def test_the_summary_reads_matching_rungs_and_ignores_stale_ones(tmp_path, monkeypatch):
    from shearbridge.config import get_profile
    from shearbridge.steps.converge import summarize_ladder

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path / "data"))
    root = tmp_path / "static"
    shutil.copytree(_committed_quick(), Layout.converge_store("quick", root=root))
    res = summarize_ladder(get_profile("quick"), root)
    seed = res["seeds"]["0"]
    assert res["source"] == "store" and res["rungs_read"] == 3 and not res["stale"]
    # the build's evaluation agrees with the training's own last validation point
    assert np.allclose(seed["points"], seed["history_last_point"], rtol=1e-4)
    stale = Layout.converge_store("quick", 0, 60, root=root)
    rec = json.loads(stale.read_text())
    stale.write_text(json.dumps({**rec, "hash": "0" * 16}))
    res = summarize_ladder(get_profile("quick"), root)
    assert res["rungs_read"] == 2 and res["stale"] == ["seed 0, 60 steps"]
    assert res["seeds"]["0"]["rungs"] == [30, 120]


@pytest.mark.pipeline
def test_a_committed_rung_is_reproduced_exactly(tmp_path):
    """The first rung of the quick ladder, retrained by the command line, gives the committed
    parameters byte for byte on the CPU that made them (on another, to 1e-4: reassociation)."""
    from flax import serialization

    from shearbridge.provenance import cpu_model

    committed = Layout.converge_store("quick", 0, 30, ".msgpack", root=ROOT / "src" / "static")
    env_cmd = [sys.executable, "-m", "shearbridge", "converge", "rung", "--ladder", "quick"]
    env_cmd += ["--seed", "0", "--steps", "30", "--root", str(tmp_path)]
    subprocess.run(env_cmd, check=True, cwd=ROOT, capture_output=True)
    new = Layout.converge_store("quick", 0, 30, ".msgpack", root=tmp_path)
    rec = json.loads(committed.with_suffix(".json").read_text())
    if rec["provenance"]["hardware"]["cpu"] == cpu_model():
        assert new.read_bytes() == committed.read_bytes()
    else:
        import jax

        a = jax.tree_util.tree_leaves(serialization.msgpack_restore(new.read_bytes()))
        b = jax.tree_util.tree_leaves(serialization.msgpack_restore(committed.read_bytes()))
        assert all(np.allclose(x, y, rtol=1e-4, atol=1e-6) for x, y in zip(a, b))

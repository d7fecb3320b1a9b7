"""Training on fresh noise: the loss, determinism, the held-out families, the cell statistics."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from shearbridge.config import ConfigError
from shearbridge.models.psfnet import PSFNet
from shearbridge.sim.population import (
    GALAXY_FAMILIES,
    PSF_FAMILIES,
    PopulationConfig,
    draw_population,
    render_population,
)
from shearbridge.stats.cells import cell_metrics, pull_width
from shearbridge.train.fresh import (
    CleanSet,
    FreshConfig,
    bound_weighted_loss,
    noisy_copy,
    train_fresh,
)

pytestmark = pytest.mark.pipeline  # trainings or pipeline steps end to end: not in `make check`

TINY = PSFNet(channels=(2,), dilations=(1,), hidden=8, head_layers=1)


def _clean(n, seed):
    cfg = PopulationConfig()
    lab = draw_population(
        cfg, n, np.random.default_rng(seed), galaxies=["gauss"], psfs=["gauss", "moffat"]
    )
    stamps, psfs = render_population(cfg, lab)
    c = (2.0 / np.sqrt((stamps.astype(np.float64) ** 2).sum((1, 2)))).astype(np.float32)
    return CleanSet(stamps, psfs, np.c_[lab["g1"], lab["g2"]].astype(np.float32), c)


def test_the_loss_weighs_each_stamp_by_its_own_bound():
    pred = jnp.asarray([[0.1, 0.0, 0.0], [0.0, 0.2, np.log(2.0)]])
    g = jnp.zeros((2, 2))
    bound = jnp.asarray([0.1, 0.01])
    loss, point = bound_weighted_loss(pred, g, bound, 0.0)
    assert_allclose(float(point), (1.0 + 400.0) / 2, rtol=1e-6)
    _, plain = bound_weighted_loss(pred, g, bound, 0.0, bound_weighted=False)
    assert_allclose(float(plain), (0.01 + 0.04) / 2, rtol=1e-6)
    total, _ = bound_weighted_loss(pred, g, bound, 1.0)
    nll = (0.01 * 0.5 + 0.0) + (0.04 * 0.5 / 4.0 + 2 * np.log(2.0))
    assert_allclose(float(total - loss), nll / 2, rtol=1e-5)


def test_the_same_seed_gives_the_same_network_and_another_seed_another():
    train, val = _clean(64, 0), _clean(32, 1)
    cfg = FreshConfig(steps=6, batch_size=16, eval_every=3)
    x, sigma = noisy_copy(train, jax.random.PRNGKey(5), cfg.noise_min, cfg.noise_max)
    init = TINY.data_init(
        TINY.init(jax.random.PRNGKey(0), x[:2], train.psfs[:2], sigma[:2]),
        x,
        train.psfs,
        sigma,
        train.g,
    )
    a, hist = train_fresh(TINY, init, train, val, cfg)
    b, _ = train_fresh(TINY, init, train, val, cfg)
    c, _ = train_fresh(TINY, init, train, val, dataclasses.replace(cfg, seed=1))
    leaves = zip(
        jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), jax.tree_util.tree_leaves(c)
    )
    same, differ = True, False
    for la, lb, lc in leaves:
        same &= bool(np.array_equal(np.asarray(la), np.asarray(lb)))
        differ |= not np.array_equal(np.asarray(la), np.asarray(lc))
    assert same and differ
    assert hist["step"] == [3, 6] and all(np.isfinite(hist["val_loss"]))


def test_noisy_copy_draws_sigma_in_range_and_is_reproducible():
    clean = _clean(40, 2)
    x1, s1 = noisy_copy(clean, jax.random.PRNGKey(1), 1e-4, 1e-2)
    x2, s2 = noisy_copy(clean, jax.random.PRNGKey(1), 1e-4, 1e-2)
    assert np.array_equal(x1, x2) and np.array_equal(s1, s2)
    assert s1.min() >= 1e-4 * (1 - 1e-6) and s1.max() <= 1e-2 * (1 + 1e-6) and s1.std() > 0
    resid = (x1 - clean.stamps) / s1[:, None, None]
    assert abs(resid.std() - 1.0) < 0.02


def test_a_bad_clean_set_or_config_is_named():
    clean = _clean(4, 3)
    with pytest.raises(ValueError, match="NaN"):
        CleanSet(clean.stamps * np.nan, clean.psfs, clean.g, clean.c)
    with pytest.raises(ValueError, match="shape"):
        CleanSet(clean.stamps, clean.psfs[:, :5], clean.g, clean.c)
    with pytest.raises(ConfigError, match="noise_min"):
        FreshConfig(noise_min=1e-2, noise_max=1e-3).validate()
    from shearbridge.config.population import PopulationPlan

    with pytest.raises(ConfigError, match="metacal_noise"):
        PopulationPlan(metacal_noise=(5e-3,)).validate()  # metacal runs on a shear-test level only
    for budgets in ((1.0,), (0.0,), (0.5, 0.5)):
        with pytest.raises(ConfigError, match="budgets"):
            PopulationPlan(budgets=budgets).validate()


def test_a_budget_run_is_the_first_seed_on_a_complete_schedule_of_fewer_steps():
    """The learning curve's shorter runs change the step count (and so the cosine schedule's length)
    and nothing else; they are named after their share of the steps."""
    from shearbridge.config.population import PopulationPlan

    plan = PopulationPlan(
        seeds=(3, 4), budgets=(0.25, 0.5), fresh=FreshConfig(steps=1000, eval_every=400)
    )
    entries = {name: cfg for name, cfg, _ in plan.entries()}
    assert plan.ablation_names()[-2:] == ["steps_25", "steps_50"]
    assert entries["abl_steps_25"] == dataclasses.replace(
        plan.fresh, seed=3, steps=250, eval_every=250
    )
    assert entries["abl_steps_50"] == dataclasses.replace(plan.fresh, seed=3, steps=500)
    assert entries["3"].steps == 1000


def test_the_study_trains_on_training_families_only(tmp_path, monkeypatch):
    """The cached training and validation sets of the population step hold no held-out family."""
    from shearbridge.config import get_profile
    from shearbridge.config import population as plans
    from shearbridge.steps import population as step

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    small = dataclasses.replace(plans.PLANS["quick"], n_train=24, n_val=8)
    monkeypatch.setitem(plans.PLANS, "quick", small)
    profile = get_profile("quick")
    cfg = small.population
    for split in ("train", "val"):
        labels, clean = step.clean_set(profile, small, split)
        assert GALAXY_FAMILIES.index(cfg.held_out_galaxy) not in labels["galaxy_id"]
        assert PSF_FAMILIES.index(cfg.held_out_psf) not in labels["psf_id"]
        assert len(clean) == (24 if split == "train" else 8) and np.all(clean.c > 0)
    train_labels, _ = step.clean_set(profile, small, "train")
    val_labels, _ = step.clean_set(profile, small, "val")
    assert not set(train_labels["g1"].tolist()) & set(
        val_labels["g1"].tolist()
    )  # different galaxies


def test_cell_metrics_pulls_and_gain():
    rng = np.random.default_rng(0)
    n = 4000
    truth = rng.normal(0, 0.2, (n, 2))
    s = np.full(n, 0.01)
    good = np.c_[truth + rng.normal(0, 0.01, (n, 2)), np.log(s)]
    worse = np.c_[truth + rng.normal(0, 0.02, (n, 2)), np.log(s)]
    out = cell_metrics(
        {"moments": worse, "seed0": good, "seed1": good},
        truth,
        np.full((n, 2), 0.01),
        np.ones((n, 5, 5)),
        1.0,
        rng,
        50,
    )
    net = out["methods"]["psfnet"]
    assert (
        abs(net["ratio"] - 1.0) < 0.05
        and abs(net["pull"] - 1.0) < 0.05
        and net["ratio_seed_sd"] == 0.0
    )
    assert abs(out["gain_over_moments"]["ratio"] - 2.0) < 0.1
    assert (
        abs(pull_width(good[:, :2] - truth, good[:, 2] + np.log(2), rng, 20)["pull"] - 0.5) < 0.03
    )
    with pytest.raises(ValueError, match="moments"):
        cell_metrics({"seed0": good}, truth, np.full((n, 2), 0.01), np.ones((n, 5, 5)), 1.0, rng, 5)


def test_fixed_noise_ablation_reuses_one_field_per_galaxy():
    """With fresh_noise=False a galaxy's noisy stamp is the same whenever it is drawn (by
    fresh_noise of its index); with fresh noise, the fields of two steps differ."""
    from shearbridge.train.augment import fresh_noise

    key = jax.random.PRNGKey(7)
    a = fresh_noise(key, 3, (1, 5, 5), jnp.ones(1))
    b = fresh_noise(key, 3, (1, 5, 5), jnp.ones(1))
    c = fresh_noise(key, 4, (1, 5, 5), jnp.ones(1))
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.allclose(
        np.asarray(a), np.asarray(c)
    )
    train, val = _clean(32, 4), _clean(16, 5)
    cfg = FreshConfig(steps=2, batch_size=8, eval_every=2, fresh_noise=False)
    x, sigma = noisy_copy(train, jax.random.PRNGKey(5), cfg.noise_min, cfg.noise_max)
    init = TINY.data_init(
        TINY.init(jax.random.PRNGKey(0), x[:2], train.psfs[:2], sigma[:2]),
        x,
        train.psfs,
        sigma,
        train.g,
    )
    _, hist = train_fresh(TINY, init, train, val, cfg)
    assert np.isfinite(hist["val_loss"][-1]) and hist["config"]["fresh_noise"] is False


def test_shape_response_recovers_a_known_line():
    from shearbridge.stats.cells import shape_response

    rng = np.random.default_rng(1)
    g = rng.normal(0, 0.2, (3000, 2))
    pred = np.c_[0.95 * g[:, 0] + 0.01, 0.97 * g[:, 1] - 0.01] + rng.normal(0, 1e-3, (3000, 2))
    out = shape_response(pred, g, rng, 30)
    assert (
        abs(out["m_shape"] + 0.04) < 1e-3
        and abs(out["c_shape"] - 0.01) < 1e-3
        and out["m_shape_err"] > 0
    )


def test_a_cells_shear_test_has_the_paired_layout_and_no_design_bias(tmp_path, monkeypatch):
    """Sixteen stamps per galaxy, the -n stamp the +n one's image, the PSF unrotated; the exact
    lensed shapes through the paired statistic give m ~ 0 (the design's own floor)."""
    from shearbridge.config import get_profile
    from shearbridge.config import population as plans
    from shearbridge.stats.bias import paired_shear_bias
    from shearbridge.steps import population as step

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    small = dataclasses.replace(plans.PLANS["quick"], n_shear=4)
    cell = step.shear_cell_set(get_profile("quick"), small, "exp", "moffat")
    assert cell["stamps"].shape == (64, 53, 53)
    assert np.array_equal(cell["stamps"][::2], cell["stamps"][1::2])
    assert np.array_equal(
        cell["psfs"][0], cell["psfs"][5]
    )  # one PSF per galaxy, not turned with it
    assert not np.allclose(cell["stamps"][0], cell["stamps"][2])  # +g and -g differ
    ideal = paired_shear_bias(np.c_[cell["g1"], cell["g2"]], cell)
    assert abs(ideal["m1"]) < 1e-4 and abs(ideal["m2"]) < 1e-4


def test_train_and_evaluate_end_to_end_and_resume(tmp_path, monkeypatch):
    """The step on a small plan (two galaxy and two PSF families, one held out each): the cell table
    has every cell with its held-out mark, a second `train` keeps the finished networks, and a
    changed plan redraws its galaxies and retrains."""
    from shearbridge.config import get_profile
    from shearbridge.config import population as plans
    from shearbridge.steps import population as step

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    pop = PopulationConfig(
        galaxy_families=("gauss", "exp"),
        psf_families=("gauss", "moffat"),
        held_out_galaxy="exp",
        held_out_psf="moffat",
    )
    small = plans.PopulationPlan(
        population=pop,
        n_train=32,
        n_val=16,
        n_cell=8,
        cell_noise=(1e-3,),
        n_shear=4,
        shear_noise=(1e-2,),
        seeds=(0,),
        ablations=(("plain_mse", (("bound_weighted", False),)),),
        budgets=(0.5,),
        fresh=FreshConfig(steps=2, batch_size=8, eval_every=2),
    )
    monkeypatch.setitem(plans.PLANS, "quick", small)
    # the registry's population methods: REGAUSS here (the per-level networks would need their runs)
    monkeypatch.setattr(
        "shearbridge.steps.population_methods.population_methods",
        lambda p, s, which="population": ["hsm_regauss"],
    )
    profile = get_profile("quick")
    step.train_population(profile)
    from shearbridge.layout import Layout

    paths = sorted(Layout(profile).population().glob("psfnet_*.msgpack"))
    assert [p.name for p in paths] == [
        "psfnet_0.msgpack",
        "psfnet_abl_plain_mse.msgpack",
        "psfnet_abl_steps_50.msgpack",
        "psfnet_moments.msgpack",
    ]
    stamp = {p.name: p.stat().st_mtime_ns for p in paths}
    step.train_population(profile)
    assert {p.name: p.stat().st_mtime_ns for p in paths} == stamp  # nothing retrained
    with monkeypatch.context() as m:  # other model code: every entry is trained again
        m.setattr("shearbridge.steps.population_train.code_version", lambda: "other code")
        step.train_population(profile)
    assert all(p.stat().st_mtime_ns != stamp[p.name] for p in paths)
    out = step.evaluate_population(profile)
    cells = {(c["galaxy"], c["psf"]): c for c in out["cells"]}
    assert set(cells) == {(g, p) for g in ("gauss", "exp") for p in ("gauss", "moffat")}
    assert [k for k, c in cells.items() if c["held_out"]] == [
        ("gauss", "moffat"),
        ("exp", "gauss"),
        ("exp", "moffat"),
    ]
    assert set(cells[("gauss", "gauss")]["methods"]) >= {
        "psfnet",
        "moments",
        "seed0",
        "abl_plain_mse",
        "hsm_regauss",
    }
    assert (
        cells[("gauss", "gauss")]["methods"]["hsm_regauss"]["n"]
        + cells[("gauss", "gauss")]["methods"]["hsm_regauss"]["n_flagged"]
        == 8
    )
    assert "hsm_regauss" in out["shear_cells"][0]["bias"]
    assert len(out["shear_cells"]) == 4 and "m1" in out["shear_cells"][0]["bias"]["seed0"]
    assert set(out["shear_cells"][0]["metacal"]) == {
        "moments",
        "seed0",
    }  # the seeds and the reference
    assert (
        "abl_plain_mse" not in out["shear_cells"][0]["bias"]
    )  # the ablations are not shear-tested
    # the paper's summary and tables of it
    from shearbridge.paper.tables import population_bias_table, population_table
    from shearbridge.summaries.population import FAMILY_LABELS, NETWORK, label, population_summary

    summary = population_summary(out, "quick")
    assert summary["learning"]["runs"] == ["abl_steps_50", "seed0"] and summary["learning"][
        "steps"
    ] == [1, 2]
    assert [c["group"] for c in summary["cells"]] == ["in", "psf", "galaxy", "both"]
    assert summary["shear"][0]["bias"]["psfnet"]["m"] == pytest.approx(
        0.5
        * (
            out["shear_cells"][0]["bias"]["seed0"]["m1"]
            + out["shear_cells"][0]["bias"]["seed0"]["m2"]
        )
    )
    table = population_table(
        summary["cells"], [NETWORK, "moments", "hsm_regauss"], label, FAMILY_LABELS, 8, NETWORK
    )
    assert table.count("\\\\") == 1 + len(summary["cells"]) and "Moments (own PSF)" in table
    assert "metacal $m$" in population_bias_table(
        summary["shear"], ["psfnet", "hsm_regauss"], label, FAMILY_LABELS, 1e-2, 1e-2, NETWORK
    )
    assert "m1" in out["shear_cells"][0]["metacal"]["seed0"]
    # the registry's psfnet method is the first seed behind the estimator interface,
    # told PSF and noise
    from shearbridge.errors import EstimatorInputError
    from shearbridge.runs import method_estimator, population_network

    cell = step.cell_set(profile, small, "gauss", "gauss")
    x = cell["stamps"] + np.float32(1e-3) * np.random.default_rng(0).standard_normal(
        cell["stamps"].shape, dtype=np.float32
    )
    res = method_estimator("psfnet", profile, 1e-3).measure(x, cell["psfs"], 0.141, 1e-3)
    model, params = population_network(profile, "0")
    unit = cell["psfs"] / cell["psfs"].sum(axis=(1, 2), keepdims=True)
    direct = np.asarray(model.apply(params, x, unit, np.full(len(x), 1e-3, np.float32)))
    assert_allclose(np.c_[res.g1, res.g2], direct[:, :2], rtol=1e-5, atol=1e-7)
    assert_allclose(res.extra["sigma_g"], np.exp(direct[:, 2]), rtol=1e-5)
    one = method_estimator("psfnet", profile, 1e-3).measure(
        x[:3], cell["psfs"][0], 0.141, 1e-3
    )  # one shared PSF
    assert one.g1.shape == (3,)
    with pytest.raises(EstimatorInputError, match="noise sigma"):
        method_estimator("psfnet", profile, 1e-3).measure(x, cell["psfs"], 0.141, None)
    with pytest.raises(EstimatorInputError, match="trained on 53x53 stamps, got 51x51"):
        method_estimator("psfnet", profile, 1e-3).measure(
            x[:, :51, :51], cell["psfs"][0], 0.141, 1e-3
        )
    # another training set size: the cached galaxies are drawn again and the networks retrained
    monkeypatch.setitem(plans.PLANS, "quick", dataclasses.replace(small, n_train=40))
    step.train_population(profile)
    assert len(step.clean_set(profile, plans.PLANS["quick"], "train")[1]) == 40
    assert paths[0].stat().st_mtime_ns != stamp[paths[0].name]


def test_the_uncertainty_head_and_the_shear_path_share_no_gradient():
    """The shear loss moves no uncertainty parameter and the likelihood no shear parameter, and the
    optimiser clips the two groups apart (the shared head left the pulls 2-6 times too narrow)."""
    from shearbridge.models.psfnet import UNCERTAINTY_PREFIX
    from shearbridge.train.fresh import param_groups

    train = _clean(32, 0)
    x, sigma = noisy_copy(train, jax.random.PRNGKey(5), 1e-4, 1e-2)
    params = TINY.data_init(
        TINY.init(jax.random.PRNGKey(0), x[:2], train.psfs[:2], sigma[:2]),
        x,
        train.psfs,
        sigma,
        train.g,
    )
    p = dict(params["params"])  # a non-zero uncertainty read-out, so its gradient path is live
    p[f"{UNCERTAINTY_PREFIX}out"] = {
        "kernel": jnp.full_like(p[f"{UNCERTAINTY_PREFIX}out"]["kernel"], 0.1),
        "bias": p[f"{UNCERTAINTY_PREFIX}out"]["bias"],
    }
    params = {"params": p}
    bound = jnp.asarray(sigma * train.c)

    def parts(q):
        pred = TINY.apply(q, x, train.psfs, sigma)
        total, point = bound_weighted_loss(pred, jnp.asarray(train.g), bound, 1.0)
        return point, total - point

    g_point = jax.grad(lambda q: parts(q)[0])(params)
    g_nll = jax.grad(lambda q: parts(q)[1])(params)
    groups = param_groups(params)
    flat = zip(
        jax.tree_util.tree_leaves(groups),
        jax.tree_util.tree_leaves(g_point),
        jax.tree_util.tree_leaves(g_nll),
    )
    seen = set()
    for group, gp, gn in flat:
        seen.add(group)
        if group == "uncertainty":
            assert float(jnp.abs(gp).max()) == 0.0
        else:
            assert float(jnp.abs(gn).max()) == 0.0
    assert seen == {"point", "uncertainty"}
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree_util.tree_leaves(g_nll))


def test_the_uncertainty_head_learns_the_scatter_of_the_residuals():
    """Trained on a fixed shear path, the head's pulls on new stamps come out near one."""
    train, val = _clean(256, 0), _clean(128, 1)
    cfg = FreshConfig(
        steps=150, batch_size=64, eval_every=50, noise_min=1e-3, noise_max=1e-2, learning_rate=1e-2
    )
    x, sigma = noisy_copy(train, jax.random.PRNGKey(5), cfg.noise_min, cfg.noise_max)
    init = TINY.data_init(
        TINY.init(jax.random.PRNGKey(0), x[:2], train.psfs[:2], sigma[:2]),
        x,
        train.psfs,
        sigma,
        train.g,
    )
    bad = dict(init["params"])
    from shearbridge.models.psfnet import UNCERTAINTY_PREFIX

    bad[f"{UNCERTAINTY_PREFIX}log_s0"] = bad[f"{UNCERTAINTY_PREFIX}log_s0"] + np.log(
        5.0
    )  # start 5x too wide
    params, _ = train_fresh(TINY, {"params": bad}, train, val, cfg)
    vx, vs = noisy_copy(val, jax.random.PRNGKey(9), cfg.noise_min, cfg.noise_max)
    pred = np.asarray(TINY.apply(params, vx, val.psfs, vs))
    width = pull_width(pred[:, :2] - val.g, pred[:, 2], np.random.default_rng(0), 50)["pull"]
    assert 0.8 < width < 1.25, width


def test_metacal_by_psf_matches_metacal_per_galaxy_and_calibrates_the_moments(
    tmp_path, monkeypatch
):
    """Grouped metacal equals metacal_images on each galaxy's stamps; a mixed group is refused; and
    on a noise-free shear test (exponential galaxies, Moffat PSFs) it removes the moments-only
    estimator's multiplicative bias."""
    from shearbridge.config import get_profile
    from shearbridge.config import population as plans
    from shearbridge.errors import EstimatorInputError
    from shearbridge.stats.bias import paired_metacal_bias, paired_shear_bias
    from shearbridge.stats.metacal_fourier import metacal_by_psf, metacal_images
    from shearbridge.steps import population as step

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    cell = step.shear_cell_set(
        get_profile("quick"), dataclasses.replace(plans.PLANS["quick"], n_shear=12), "exp", "moffat"
    )
    comp = cell["pair_id"].astype(np.int64) % 2 + 1
    noshear, plus, minus, psf_r = metacal_by_psf(
        cell["stamps"], cell["psfs"], cell["pair_id"], comp, step=0.01
    )
    first = np.flatnonzero(cell["pair_id"] == cell["pair_id"][0])
    ref = metacal_images(cell["stamps"][first], cell["psfs"][first[0]], step=0.01)
    assert_allclose(noshear[first], ref.noshear)
    assert_allclose(plus[first], ref.along(comp[first], +1))
    assert_allclose(psf_r[first[0]], ref.psf_image)
    mixed = cell["psfs"].copy()
    mixed[first[1]] = np.roll(mixed[first[1]], 1, axis=0)
    with pytest.raises(EstimatorInputError, match="share one PSF"):
        metacal_by_psf(cell["stamps"], mixed, cell["pair_id"], comp)

    train = _clean(256, 3)
    sigma = np.full(len(train), 1e-5, np.float32)
    params = TINY.data_init(
        TINY.init(jax.random.PRNGKey(0), train.stamps[:2], train.psfs[:2], sigma[:2]),
        train.stamps,
        train.psfs,
        sigma,
        train.g,
    )

    def g(x, psf):
        return np.asarray(
            TINY.apply(
                params,
                x.astype(np.float32),
                psf.astype(np.float32),
                np.full(len(x), 1e-5, np.float32),
            )
        )[:, :2]

    raw = paired_shear_bias(g(cell["stamps"], cell["psfs"]), cell)
    idx = np.arange(len(comp))
    response = (g(plus, psf_r)[idx, comp - 1] - g(minus, psf_r)[idx, comp - 1]) / 0.02
    cal = paired_metacal_bias(g(noshear, psf_r), response, cell)
    m_raw, m_cal = 0.5 * (raw["m1"] + raw["m2"]), 0.5 * (cal["m1"] + cal["m2"])
    assert abs(m_raw) > 0.01, m_raw  # the analytic moments shrink exponential galaxies' shapes ...
    assert abs(m_cal) < 0.2 * abs(m_raw), (m_raw, m_cal)  # ... which metacalibration corrects


def test_the_registrys_population_methods_measure_where_they_exist_with_each_stamps_psf():
    """Classical methods at every level, a per-level network only where the registry trains it; a
    classical estimator is told each group's PSF, a per-level network is called once."""
    from shearbridge import study
    from shearbridge.config import get_profile
    from shearbridge.estimators.base import EstimatorResult
    from shearbridge.steps.population_methods import measure_grouped, population_methods

    quick = get_profile("quick")
    toy = study.Method(
        "toy_pair",
        "network",
        "Toy",
        frozenset({"population"}),
        build=lambda ctx: None,
        experiment="shapenet_mix",
    )  # trained at the pair levels only (robustness)
    with study.registered(toy):
        assert "toy_pair" in population_methods(
            quick, 1e-3
        ) and "toy_pair" not in population_methods(quick, 1e-2)
        assert {"mlfit", "hsm_regauss"} <= set(population_methods(quick, 1e-2))

    class Told:  # records the PSF each call was told
        def __init__(self):
            self.calls = []

        def measure(self, stamps, psf, scale, sigma):
            self.calls.append((len(stamps), float(psf[0, 0])))
            return EstimatorResult(g1=np.full(len(stamps), psf[0, 0]), g2=np.zeros(len(stamps)))

    stamps = np.zeros((6, 5, 5))
    psfs = np.repeat(np.arange(3.0), 2)[:, None, None] * np.ones((6, 5, 5))
    est = Told()
    g, flags, response = measure_grouped(est, stamps, psfs, np.repeat(np.arange(3), 2), 0.2, 1e-3)
    assert est.calls == [(2, 0.0), (2, 1.0), (2, 2.0)] and response is None
    assert_allclose(g[:, 0], [0, 0, 1, 1, 2, 2]) and not flags.any()
    net = Told()
    net.trained = object()  # a per-level network: one call, its PSF is part of the model
    measure_grouped(net, stamps, psfs, np.arange(6), 0.2, 1e-3)
    assert len(net.calls) == 1

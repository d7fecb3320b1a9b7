"""The ablation study: configs differ in exactly the documented switch; summary, numbers, figure.

The summary test writes small fake comparison results (errors with a designed RMSE factor
per ladder step, on shared noise draws) into a temporary data root, so every number the
summary derives is known exactly.
"""

from __future__ import annotations

import dataclasses
import runpy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shearbridge.summaries import ablation as A
from shearbridge import layout, study
from shearbridge.layout import Layout
from shearbridge.config import SimConfig, get_profile, noise_tag
from shearbridge.config.ablation import (
    ABLATION_LADDER,
    ABLATION_REMOVALS,
    BASELINE_LIKE,
    ablation_epochs,
    ablation_names,
    ablation_objects,
)
from shearbridge.config.experiments import get_experiment
from shearbridge.io import save_npz, write_json
from shearbridge.models import bind_data_kwargs, get_model

PROFILE = get_profile("quick")
SIGMA = 1e-5


def kwargs_of(name: str) -> dict:
    return dict(get_experiment(name, PROFILE, SIGMA).train.model_kwargs)


def changed(a: dict, b: dict) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def test_ladder_starts_at_the_baseline_architecture_and_adds_the_documented_switch_per_step():
    first = kwargs_of(ABLATION_LADDER[0][0])
    assert changed(first, BASELINE_LIKE) == set(), "step 0 must be the baseline-like ShapeNet"
    assert "psf_sigma_px" not in first, "the PSF comes from the training data, not the experiment"
    for (prev, _, _), (name, label, change) in zip(ABLATION_LADDER, ABLATION_LADDER[1:]):
        diff = changed(kwargs_of(prev), kwargs_of(name))
        assert change and diff == set(change), (
            f"{name} ({label}) changes {diff}, documents {set(change)}"
        )
    assert kwargs_of(ABLATION_LADDER[-1][0]) == kwargs_of("shapenet"), (
        "the ladder must end at the final model"
    )


def test_each_removal_differs_from_the_final_model_in_exactly_its_switch():
    final = kwargs_of("shapenet")
    for name, label, change in ABLATION_REMOVALS:
        diff = changed(kwargs_of(name), final)
        assert change and diff == set(change), (
            f"{name} ({label}) changes {diff}, documents {set(change)}"
        )


def test_ablations_share_the_final_recipe_at_a_reduced_budget():
    final = get_experiment("shapenet", PROFILE, SIGMA)
    for name in ablation_names():
        exp = get_experiment(name, PROFILE, SIGMA)
        assert exp.epochs == ablation_epochs(PROFILE) < PROFILE.epochs
        assert exp.train.max_objects == ablation_objects(PROFILE) < PROFILE.n_train
        same = dataclasses.replace(
            exp.train,
            model_kwargs=final.train.model_kwargs,
            epochs=final.train.epochs,
            max_objects=final.train.max_objects,
        )
        assert same == final.train, (
            f"{name}: training recipe differs beyond the model and the budget"
        )
        assert (exp.train_dataset, exp.test_dataset, exp.noise_sigma) == (
            final.train_dataset,
            final.test_dataset,
            final.noise_sigma,
        )


@pytest.mark.pipeline
def test_every_ablation_builds_a_two_output_network():
    x = jnp.zeros((1, 53, 53), jnp.float32)
    for name in ablation_names():
        exp = get_experiment(name, PROFILE, SIGMA)
        kwargs = bind_data_kwargs(
            exp.train.model, exp.train.model_kwargs, SimConfig()
        )  # the data's PSF
        model = get_model(exp.train.model, exp.train.n_outputs, **kwargs)
        params = jax.eval_shape(model.init, jax.random.key(0), x)
        out = jax.eval_shape(model.apply, params, x)
        assert out.shape == (1, 2), f"{name}: output shape {out.shape}"


def test_ablation_noise_levels_are_the_lowest_and_1e_3():
    assert A.ablation_sigmas(PROFILE) == (min(PROFILE.noise_grid), 1e-3)
    other = dataclasses.replace(PROFILE, noise_grid=(1e-5, 1e-4))
    assert A.ablation_sigmas(other) == (1e-5, 1e-4)


def test_paired_factor_is_exact_for_scaled_errors_and_unbiased_for_independent_ones():
    rng = np.random.default_rng(4)
    e = rng.standard_normal((500, 2))
    f, err = A.paired_rmse_factor(e, 0.5 * e, rng, 50)
    assert f == pytest.approx(2.0, rel=1e-12) and err < 1e-12, (
        "pairing must cancel the sample noise"
    )
    a, b = 2.0 * rng.standard_normal((4000, 2)), rng.standard_normal((4000, 2))
    f, err = A.paired_rmse_factor(a, b, rng, 200)
    assert abs(f - 2.0) < 4 * err, f"factor {f} +- {err}, expected 2"
    with pytest.raises(ValueError, match="paired"):
        A.paired_rmse_factor(a, b[:10], rng, 10)


@pytest.mark.pipeline
def test_forward_flops_of_the_baseline_architecture_match_its_multiply_adds():
    # conv1 3x3x1->16 on 53x53, 2x2 average pool -> 26x26, conv2 3x3x16->32, pool -> 13x13,
    # dense 13*13*32 -> 128, out 128 -> 2. XLA counts 2 flops per multiply-add, skips the
    # padding taps of the SAME convolutions (-5% on conv2 here) and adds the element-wise
    # ops (bias, ReLU, pooling: +3%); so the count lies within 10% of 2 x MACs.
    macs = 53 * 53 * 16 * 9 + 26 * 26 * 32 * 16 * 9 + 13 * 13 * 32 * 128 + 128 * 2
    flops = A.forward_flops("abl_0_baseline", PROFILE, 53)
    assert 0.9 * 2 * macs < flops < 1.1 * 2 * macs, f"{flops:.4g} flops vs 2 x {macs} multiply-adds"


# ------------------------------------------------------------------ summary from fake results

#: designed RMSE factor of each ladder step over the previous one (the second step helps most)
STEP_FACTORS = tuple(3.0 if k == 1 else 1.1 + 0.05 * k for k in range(len(ABLATION_LADDER) - 1))


def _write_fake_results(profile, names_err: dict[str, float], rng) -> dict:
    """Comparison JSON + npz and metrics.json for each name, errors ``scale * shared draws``."""
    n = 64
    truth = rng.uniform(-0.3, 0.3, (n, 2))
    base = rng.standard_normal((n, 2))
    written = {}
    for sigma in A.ablation_sigmas(profile):
        for i, (name, scale) in enumerate(names_err.items()):
            err = scale * sigma * 1e3 * base
            rmse = float(np.sqrt(np.mean(err**2)))
            res = {
                "method": name,
                "noise_sigma": sigma,
                "n": n,
                "rmse_g": rmse,
                "rmse_g_err": 0.1 * rmse,
                "ratio": rmse / (sigma * 10),
                "ratio_err": 0.01 * (i + 1),
                "galaxies_per_s": 1000.0 + i,
            }
            path = Layout(profile).result("compare", name, sigma)
            write_json(path, res)
            save_npz(
                path.with_suffix(".npz"), g=truth + err, flags=np.zeros(n, np.int64), true=truth
            )
            write_json(
                Layout(profile).run(name, sigma) / "metrics.json",
                {"n_params": 1000 + i, "epochs_run": 2, "sample_steps": 4096 * (i + 1)},
            )
            written[(name, noise_tag(sigma))] = res
    return written


@pytest.fixture
def fake_summary(data_root):
    profile = dataclasses.replace(PROFILE, bootstrap=20)
    scales = {}
    s = 1.0
    for k, (name, _, _) in enumerate(ABLATION_LADDER):
        if k:
            s /= STEP_FACTORS[k - 1]
        scales[name] = s
    scales |= {name: 0.5 for name, _, _ in ABLATION_REMOVALS} | {"baseline": 2.0, "shapenet": 0.1}
    written = _write_fake_results(profile, scales, np.random.default_rng(9))
    return profile, A.ablation_summary(profile, flops=False), written


def test_summary_builds_the_table_from_the_result_files(fake_summary):
    profile, s, written = fake_summary
    names = [r["name"] for r in s["rows"]]
    assert names == ablation_names() + ["baseline", "shapenet"], (
        "ladder, removals, then the references"
    )
    labels = {n: lab for n, lab, _ in ABLATION_LADDER + ABLATION_REMOVALS} | dict(A.references())
    assert s["noise_tags"] == [noise_tag(x) for x in A.ablation_sigmas(profile)]
    assert s["epochs_ablation"] == ablation_epochs(profile) and s["epochs_full"] == profile.epochs
    for i, row in enumerate(s["rows"]):
        assert row["label"] == labels[row["name"]] and row["n_params"] == 1000 + i
        for tag, per in row["per_noise"].items():
            res = written[(row["name"], tag)]
            for key in ("ratio", "ratio_err", "rmse_g", "rmse_g_err", "galaxies_per_s"):
                assert per[key] == res[key], f"{row['name']} {tag} {key}"
            assert per["epochs_run"] == 2 and per["sample_steps"] == 4096 * (i + 1)
        assert "flops" not in row
    for tag in s["noise_tags"]:
        factors = [st["factor"] for st in s["steps"][tag]]
        np.testing.assert_allclose(factors, STEP_FACTORS, rtol=1e-10)
        assert max(st["factor_err"] for st in s["steps"][tag]) < 1e-10, (
            "shared draws: no paired scatter"
        )
        assert s["total"][tag]["factor"] == pytest.approx(np.prod(STEP_FACTORS), rel=1e-10)
        assert [st["to"] for st in s["steps"][tag]] == [n for n, _, _ in ABLATION_LADDER[1:]]


def value_of(path) -> float:
    """The value of a ``$v\\pm e$%`` variable file."""
    return float(path.read_text().strip().rstrip("%").strip("$").strip("{}").split("\\pm")[0])


@pytest.mark.pipeline
def test_numbers_and_figure_from_the_summary(fake_summary, monkeypatch, tmp_path):
    from shearbridge.summaries import summary_dir

    _, s, _ = fake_summary
    write_json(summary_dir() / "ablation.json", s)
    # the figure labels each noise level with the comparison's matched-filter S/N
    write_json(
        summary_dir() / "compare.json",
        {
            "profile": s["profile"],
            "snr_mf": {
                t: {"median": 2.1e4 * 1e-5 / float(t), "p16": 1.0, "p84": 1.0}
                for t in s["noise_tags"]
            },
        },
    )
    monkeypatch.setenv(
        "SHEARBRIDGE_PROFILE", s["profile"]
    )  # the scripts refuse another profile's summary
    monkeypatch.setattr(layout, "OUTPUT", tmp_path / "output")
    monkeypatch.setattr(layout, "FIGURES", tmp_path / "figures")
    runpy.run_path(str(layout.SCRIPTS / "num_ablation.py"), run_name="__main__")
    best = (
        ABLATION_LADDER[1 + int(np.argmax(STEP_FACTORS))][1]
        .removeprefix("+ ")
        .removesuffix(" (final)")
    )
    for tag in s["noise_tags"]:
        assert (
            tmp_path / "output" / f"ablation_best_step_{tag}.txt"
        ).read_text().strip() == f"{best}%"
        gain = value_of(tmp_path / "output" / f"ablation_gain_{tag}.txt")
        assert gain == pytest.approx(np.prod(STEP_FACTORS), rel=1e-6)
        assert value_of(tmp_path / "output" / f"ablation_best_factor_{tag}.txt") == pytest.approx(
            3.0, rel=1e-6
        )
    epochs = (tmp_path / "output" / "ablation_epochs.txt").read_text()
    assert epochs.strip() == f"${s['epochs_ablation']}$%"
    fraction = (tmp_path / "output" / "ablation_fraction.txt").read_text().strip().rstrip("%")
    num = runpy.run_path(str(layout.SCRIPTS / "num_ablation.py"))
    assert s["sample_steps_ablation"] == 4096 and s["sample_steps_full"] == 4096 * len(s["rows"])
    assert fraction == num["fraction_words"](s["sample_steps_ablation"], s["sample_steps_full"])
    objects = (tmp_path / "output" / "ablation_objects.txt").read_text().strip().rstrip("%")
    assert objects == f"${s['objects_ablation']:,}$".replace(",", "{,}")
    runpy.run_path(str(layout.SCRIPTS / "fig_ablation.py"), run_name="__main__")
    assert (tmp_path / "figures" / "fig_ablation.pdf").stat().st_size > 1000


def test_budget_fraction_in_words():
    words = runpy.run_path(str(layout.SCRIPTS / "num_ablation.py"))["fraction_words"]
    assert words(1, 10) == "a tenth" and words(2, 10) == "a fifth" and words(1, 6) == "a sixth"
    assert words(3, 10) == "$3/10$" and words(10, 10) == "all"


def test_summary_names_the_missing_file(data_root):
    with pytest.raises(FileNotFoundError, match="abl_0_baseline"):
        A.ablation_summary(PROFILE, flops=False)


def test_snakefile_and_summaries_know_the_ablation():
    from shearbridge.summaries.collect import SUMMARIES

    assert "ablation" in SUMMARIES
    snakefile = (layout.ROOT / "Snakefile").read_text()
    assert '"ablation": (' in snakefile and 'ABLATION_TAGS = STAGS["ablation"]' in snakefile
    from shearbridge.plan import Plan

    plan = Plan(get_profile("quick"))  # the compare rule waits for the trained run
    step = study.names("ablation")[0]
    assert plan.network_inputs(step, "1e-05") == [plan.layout.run_metrics(step, "1e-05")]

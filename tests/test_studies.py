"""Studies and noise levels as one table: every level set derives from it or agrees with it.

A study is one record (:mod:`shearbridge.studies`); its methods name it; the named levels live in
:mod:`shearbridge.config.noise`. A study added at run time appears in the registry's plans, in
the Snakefile's plan and in a rule of its own, without touching any other file.
"""

from __future__ import annotations

import math
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import snakemake_env

from shearbridge import study, studies
from shearbridge.config import PROFILES, ConfigError, get_profile, noise_tag
from shearbridge.config.noise import METACAL_NOISE, SHEARNET_HIGH, SURVEY_NOISE_GRID
from shearbridge.config.population import FreshConfig, population_plan

ROOT = Path(__file__).resolve().parents[1]


def _on(levels, grid) -> bool:
    return all(any(math.isclose(s, g) for g in grid) for s in levels)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_level_set_of_a_profile_agrees_with_the_named_levels(name):
    profile = get_profile(name)
    grid = profile.noise_grid
    assert grid == SURVEY_NOISE_GRID, "the profiles share the survey grid"
    assert studies.pair_levels(grid) == (grid[0], SHEARNET_HIGH)
    assert study.study_noise(profile, "metacal") == (METACAL_NOISE,)
    assert study.study_noise(profile, "bias") == (grid[0], SHEARNET_HIGH, grid[-1])
    plan = population_plan(profile)
    assert _on(plan.cell_noise, grid) and _on(plan.shear_noise, grid), (
        "population levels on the grid"
    )
    assert _on(plan.metacal_noise, plan.shear_noise) and _on((METACAL_NOISE,), plan.metacal_noise)
    fresh = plan.fresh
    assert (fresh.noise_min, fresh.noise_max) == (min(grid), max(grid)), (
        "PSFNet trains over the grid"
    )
    assert (FreshConfig().noise_min, FreshConfig().noise_max) == (grid[0], grid[-1])
    for st in study.study_names():
        assert _on(study.study_noise(profile, st), grid), st


def test_every_study_is_one_record_whose_methods_name_it():
    assert study.study_names() == tuple(studies.STUDY_TABLE)
    for name, record in studies.STUDY_TABLE.items():
        record.validate()
        assert record.description and record.levels in studies.LEVEL_RULES
    joined = {st for m in study.methods(available_only=False) for st in m.studies}
    assert joined <= set(study.study_names())
    with pytest.raises(ConfigError, match="levels must be one of"):
        studies.Study("odd", "every_other", "no such rule").validate()
    with pytest.raises(ConfigError, match="already registered"):
        studies.register_study(studies.get_study("compare"))


TOY_STUDY = studies.Study("toy_study", "pair", "a study added at run time")
TOY_NET = study.Method(
    "toy_net",
    "network",
    "Toy network",
    frozenset({"toy_study"}),
    build=lambda ctx: None,
    experiment="baseline_raw",
)


def test_a_study_added_at_run_time_joins_every_plan():
    """Its record and a method naming it: the registry's levels, cells and trainings follow, and
    so does the Snakefile's plan (shearbridge.plan)."""
    from shearbridge.plan import Plan

    quick = get_profile("quick")
    pair = studies.pair_levels(quick.noise_grid)
    with pytest.raises(ConfigError, match="unknown studies"):
        study.register(TOY_NET)
    with studies.registered_study(TOY_STUDY), study.registered(TOY_NET):
        assert study.study_noise(quick, "toy_study") == pair
        assert study.cells(quick, "toy_study") == [("toy_net", noise_tag(s)) for s in pair]
        assert {("baseline_raw", s) for s in pair} <= set(study.trainings(quick))
        plan = Plan(quick)
        assert plan.cells["toy_study"] == study.cells(quick, "toy_study")
    assert "toy_study" not in study.study_names(), "registered_study() removes what it added"


@pytest.mark.pipeline
def test_the_snakefile_plans_a_rule_of_a_study_added_from_outside(tmp_path):
    """A plugin module ($SHEARBRIDGE_METHODS) adds the study and its method; a rule of the study,
    in a Snakefile that includes the project's, expands its cells from the plan."""
    (tmp_path / "toy_study_plugin.py").write_text(
        textwrap.dedent("""
        from shearbridge import study, studies
        studies.register_study(studies.Study("toy_study", "pair", "a study added from outside"))
        study.register(study.Method("toy", "classical", "Toy", frozenset({"toy_study"}),
                                    build=lambda ctx: None))
    """)
    )
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(f"""
        include: "{ROOT / "Snakefile"}"

        rule toy_study:
            input:
                [L.result("toy_study", m, t) for m, t in W.cells["toy_study"]],
            output:
                "toy_study.done",
            shell:
                "touch {{output}}"

        rule toy_result:
            output:
                L.result("toy_study", "{{method}}", "{{tag}}"),
            shell:
                "{{PY}} -m shearbridge toy_study --method {{wildcards.method}}"
                " --noise {{wildcards.tag}}"
    """)
    )
    env = snakemake_env(
        SHEARBRIDGE_PROFILE="quick",
        SHEARBRIDGE_METHODS="toy_study_plugin",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT / "src")]),
    )
    proc = subprocess.run(
        [
            "snakemake",
            "-n",
            "-p",
            "-s",
            str(tmp_path / "Snakefile"),
            "--cores",
            "1",
            "-d",
            str(tmp_path),
            "toy_study.done",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for s in studies.pair_levels(get_profile("quick").noise_grid):
        assert f"results/toy_study/toy/noise{noise_tag(s)}.json" in proc.stdout

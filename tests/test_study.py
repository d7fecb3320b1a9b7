"""The study registry: every method once, read by every plan; adding one touches one place.

Also the package's architecture rules: no import cycles inside ``shearbridge`` (lazy
imports inside functions included), no private name imported across modules, no module
over 400 lines, and only the steps layer (plus summaries, paper, paths, provenance) reads
or writes the profile's data folder.
"""

from __future__ import annotations

import ast
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import snakemake_env
import importgraph

from shearbridge import study
from shearbridge.config import ConfigError, Profile, get_profile, noise_tag
from shearbridge.estimators.base import EstimatorResult

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "shearbridge"
MAX_LINES = 400


class _ToyEstimator:
    """A throw-away classical estimator: the centroid-weighted second moments of the stamp."""

    name = "toy"

    def measure(self, stamps, psf_image, pixel_scale_arcsec, noise_sigma):
        stamps = np.asarray(stamps, np.float64)
        n = stamps.shape[-1]
        y, x = np.mgrid[:n, :n] - n // 2
        q = [np.sum(stamps * w, axis=(1, 2)) for w in (x * x, y * y, x * y)]
        e1, e2 = (q[0] - q[1]) / (q[0] + q[1]), 2 * q[2] / (q[0] + q[1])
        return EstimatorResult(g1=e1 / 2, g2=e2 / 2)


TOY = study.Method(
    "toy",
    "classical",
    "Toy moments",
    frozenset({"compare", "bias", "timing"}),
    build=lambda ctx: _ToyEstimator(),
)


def test_the_registry_holds_each_method_once_with_its_studies():
    assert study.names("compare")[:7] == [
        "baseline",
        "shapenet",
        "psfnet",
        "moments_affine",
        "mlfit",
        "hsm_regauss",
        "hsm_ksb",
    ], "psfnet, trained once, is compared at every level"
    assert study.names("population") == ["baseline", "shapenet", "mlfit", "hsm_regauss"]
    assert study.names("population_shear", available_only=False) == [
        "baseline",
        "shapenet",
        "hsm_regauss",
        "anacal",
    ]
    assert study.names("seeds") == ["baseline_seed1", "baseline_seed2"]
    assert study.names("robustness") == [
        "baseline",
        "shapenet",
        "shapenet_mix",
        "moments_affine",
        "mlfit",
        "hsm_regauss",
    ]
    assert study.names("bias_grid", available_only=False) == [
        "baseline",
        "shapenet",
        "psfnet",
        "moments_affine",
        "mlfit",
        "hsm_regauss",
        "hsm_ksb",
        "anacal",
    ]
    assert [m.name for m in study.methods(available_only=False) if m.uncertainty] == ["psfnet"]
    assert study.names("timing", kind="network") == ["baseline", "shapenet", "psfnet"]
    assert "moments_affine" in study.names("timing", kind="classical"), (
        "the bare moment layer is timed"
    )
    assert study.names("learning") == study.names("evaluate") == ["baseline", "shapenet"]
    assert study.diagnosed() == ["baseline", "shapenet"]
    labels = [m.label for m in study.methods(available_only=False)]
    assert len(labels) == len(set(labels)), "two methods share a label"
    assert study.run_of("moments_affine") == "moments_affine" and study.run_of("mlfit") is None
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        study.get_method("nope")
    with pytest.raises(ConfigError, match="already registered"):
        study.register(study.get_method("mlfit"))
    with pytest.raises(ConfigError, match="unknown studies"):
        study.register(
            study.Method("x", "classical", "X", frozenset({"comparison"}), build=lambda c: None)
        )


def test_every_study_has_its_noise_levels_from_one_function():
    paper = get_profile("paper")
    assert study.study_noise(paper, "compare") == paper.noise_grid
    for name in ("timing", "robustness", "ablation", "learning"):
        assert study.study_noise(paper, name) == (1e-5, 1e-3)
    assert study.study_noise(paper, "bias") == (1e-5, 1e-3, 2e-2), (
        "the bias table reaches the survey level"
    )
    odd = Profile(name="odd", noise_grid=(1e-4, 1e-2))
    assert study.study_noise(odd, "bias") == (1e-4, 1e-2), "the highest level stands in for 1e-3"
    one = Profile(name="one", noise_grid=(1e-3,))
    assert study.study_noise(one, "timing") == (1e-3,), "no level twice"
    with pytest.raises(ConfigError, match="unknown study"):
        study.study_noise(paper, "speed")


def test_trainings_cover_every_network_at_its_levels():
    quick = get_profile("quick")
    runs = study.trainings(quick)
    assert len(runs) == len(set(runs))
    pair = set(study.study_noise(quick, "robustness"))
    for sigma in quick.noise_grid:
        assert ("baseline", sigma) in runs and (("shapenet", sigma) in runs) == (sigma in pair)
    assert {s for e, s in runs if e == "shapenet_mix"} == pair
    assert {s for e, s in runs if e == "abl_1_gelu"} == set(study.study_noise(quick, "ablation"))
    assert not any(e in ("mlfit", "hsm_regauss") for e, _ in runs)


def test_a_new_estimator_appears_in_every_plan_it_joins():
    """Adding a classical estimator touches the registry only (here: at run time)."""
    from shearbridge.cli import build_parser
    from shearbridge.paper import plotting

    with study.registered(TOY):
        assert "toy" in study.names("compare") and "toy" in study.names("bias")
        assert "toy" in study.names("timing", kind="classical")
        assert "toy" not in study.names("robustness")
        assert plotting.method_label("toy") == "Toy moments"
        assert plotting.method_style("toy") not in [
            plotting.method_style(m) for m in ("baseline", "mlfit")
        ]
        ctx = study.MethodContext(seed=1, noise_sigma=1e-3)
        res = (
            study.get_method("toy")
            .estimator(ctx)
            .measure(np.ones((2, 9, 9)), np.ones((9, 9)), 0.2, 1e-3)
        )
        np.testing.assert_allclose(res.g, 0.0, atol=1e-12, err_msg="a flat stamp is round")
        help_text = build_parser()._subparsers._group_actions[0].choices["compare"].format_help()
        assert "toy" in help_text
    assert "toy" not in study.names(), "registered() removes what it added"


@pytest.mark.pipeline
def test_the_snakefile_plans_a_method_registered_from_outside(tmp_path):
    """A module named in $SHEARBRIDGE_METHODS joins the comparison, bias and timing rules."""
    (tmp_path / "toy_plugin.py").write_text(
        textwrap.dedent(
            """
        from shearbridge import study
        study.register(study.Method("toy", "classical", "Toy", """
            """frozenset({"compare", "bias", "timing"}),
                                    build=lambda ctx: None))
        study.register(study.Method("toy_once", "network", "Toy once", frozenset({"compare"}),
                                    build=lambda ctx: None, once=True))
    """
        )
    )
    env = snakemake_env(
        SHEARBRIDGE_PROFILE="quick",
        SHEARBRIDGE_METHODS="toy_plugin",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT / "src")]),
    )
    targets = ["src/data/summary/compare.json", "src/data/quick/timing.json"]  # relative to -d
    proc = subprocess.run(
        [
            "snakemake",
            "-n",
            "-p",
            "-s",
            str(ROOT / "Snakefile"),
            "--cores",
            "1",
            "-d",
            str(tmp_path),
            *targets,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    quick = get_profile("quick")
    for tag in (noise_tag(s) for s in quick.noise_grid):
        assert (
            f"compare --method toy --noise {float(tag):g}" in out
            or f"results/compare/toy/noise{tag}" in out
        )
    for tag in study.study_tags(quick, "bias"):
        assert f"results/bias/toy/noise{tag}" in out
    assert "--networks baseline,shapenet" in out
    # a network trained once for every level: its comparison waits for the population
    # training, no per-level run
    assert "population train --profile quick" in out and "compare --method toy_once" in out
    assert "runs/toy_once" not in out and "--config toy_once" not in out


def test_a_network_trained_once_has_no_per_level_training():
    once = study.Method(
        "toy_once", "network", "Toy once", frozenset({"compare"}), build=lambda ctx: None, once=True
    )
    with study.registered(once):
        assert study.trained_once("toy_once") and not study.trained_once("baseline")
        assert not any(
            e == "toy_once" or e is None for e, _ in study.trainings(get_profile("quick"))
        )
    with pytest.raises(ConfigError, match="experiment"):
        study.Method("x", "network", "X", frozenset(), build=lambda ctx: None).validate()
    with pytest.raises(ConfigError, match="once=True"):
        study.Method(
            "x",
            "network",
            "X",
            frozenset(),
            build=lambda ctx: None,
            experiment="baseline",
            once=True,
        ).validate()


# ------------------------------------------------------------------ architecture rules


def test_no_import_cycles_inside_the_package():
    modules = importgraph.modules()
    graph = {
        m: {dep for dep, _ in importgraph.imports(m, p, modules) if dep != m}
        for m, p in modules.items()
    }
    faces = {m for m, p in modules.items() if p.name == "__init__.py"}
    # a package face only hands names on; an arrow into a face is an arrow into what it re-exports
    graph = {m: deps for m, deps in graph.items() if m not in faces}
    for m, deps in graph.items():
        graph[m] = {
            d
            for dep in deps
            for d in (
                [dep]
                if dep not in faces
                else [x for x, _ in importgraph.imports(dep, modules[dep], modules)]
            )
        }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep in graph and state.get(dep) is None:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node)


def test_no_private_name_is_imported_across_modules():
    modules = importgraph.modules()
    bad = [
        f"{m} imports {n} from {dep}"
        for m, p in modules.items()
        for dep, names in importgraph.imports(m, p, modules)
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not bad, bad


def test_no_module_is_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in PKG.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_train_and_evaluate_is_short():
    from shearbridge.train import loop

    src = Path(loop.__file__).read_text()
    fn = next(
        n
        for n in ast.parse(src).body
        if isinstance(n, ast.FunctionDef) and n.name == "train_and_evaluate"
    )
    assert fn.end_lineno - fn.lineno + 1 < 80


@pytest.mark.pipeline
def test_only_the_pipeline_layers_know_where_data_lives():
    """Below the steps everything is pure: besides the I/O layers (steps/, summaries/, paper/, the
    dataset cache sim/datasets, the readers runs and results, provenance, the API and the CLI), no
    module asks ``shearbridge.layout`` where data lives."""
    allowed = (
        "shearbridge.steps",
        "shearbridge.summaries",
        "shearbridge.paper",
        "shearbridge.cli",
        "shearbridge.layout",
        "shearbridge.provenance",
        "shearbridge.sim.datasets",
        "shearbridge.runs",
        "shearbridge.results",
        "shearbridge.api",
        "shearbridge.plan",
    )
    modules = importgraph.modules()
    users = [
        m
        for m, p in modules.items()
        if any(dep == "shearbridge.layout" for dep, _ in importgraph.imports(m, p, modules))
    ]
    bad = [m for m in users if not m.startswith(allowed)]
    assert not bad, f"modules below the steps that use shearbridge.layout: {bad}"


def test_showyourwork_dependencies_match_what_each_script_reads():
    """showyourwork.yml keeps each figure's inputs by hand: checked here against the scripts."""
    import re

    import yaml

    deps = yaml.safe_load((ROOT / "showyourwork.yml").read_text())["dependencies"]
    snakefile = (ROOT / "Snakefile").read_text()
    from shearbridge.summaries.collect import SUMMARIES, summary_files

    made_by_rules = set()
    for what in SUMMARIES:  # a rule per summary: the SUMMARIES tables, or summary_experiment
        assert f'"{what}": ' in snakefile or what in study.names("evaluate"), (
            f"no rule makes {what}"
        )
        made_by_rules |= set(summary_files(what))
    problems = []
    for script in sorted((ROOT / "src/scripts").glob("fig_*.py")):
        rel = str(script.relative_to(ROOT))
        text = script.read_text()
        read = {f"{n}.json" for n in re.findall(r'load_summary_json\("(\w+)"\)', text)}
        read |= {f"{n}.npz" for n in re.findall(r'load_summary_npz\("(\w+)"\)', text)}
        listed = {Path(d).name for d in deps.get(rel, []) if d.startswith("src/data/summary/")}
        if read - listed:
            problems.append(f"{rel} reads {sorted(read - listed)} not listed in showyourwork.yml")
        if listed - read:
            problems.append(f"{rel} lists {sorted(listed - read)} it does not read")
        if read - made_by_rules:
            problems.append(
                f"{rel} reads {sorted(read - made_by_rules)} that no Snakefile rule makes"
            )
    assert not problems, "\n".join(problems)


def test_the_architecture_page_lists_every_module_once():
    import re

    page = (ROOT / "docs/architecture.md").read_text()
    listed = re.findall(r"^\| `([\w/]+\.py)` \|", page, re.M)
    on_disk = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py"))
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert sorted(listed) == on_disk, (
        f"missing from docs/architecture.md: {sorted(set(on_disk) - set(listed))}; "
        f"listed but absent: {sorted(set(listed) - set(on_disk))}"
    )


@pytest.mark.pipeline
def test_a_new_network_needs_its_model_its_experiment_and_its_registry_entry(tmp_path, monkeypatch):
    """A network needs the model module, an experiment and a registry entry.

    The experiment names the model as 'module:Class'."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from shearbridge.config.experiments import experiment_from_dict
    from shearbridge.models import get_model, init_params

    (tmp_path / "toy_net.py").write_text(
        textwrap.dedent("""
        import flax.linen as nn
        import jax.numpy as jnp

        class ToyNet(nn.Module):
            n_outputs: int = 2

            @nn.compact
            def __call__(self, x):
                return nn.Dense(self.n_outputs)(x.reshape(x.shape[0], -1))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    quick = get_profile("quick")
    exp = experiment_from_dict(
        {
            "base": "baseline",
            "name": "toy_net",
            "train": {"model": "toy_net:ToyNet", "n_outputs": 2},
        },
        quick,
        1e-3,
    )
    model = get_model(exp.train.model, exp.train.n_outputs)
    params = init_params(model, jax.random.key(0), 9)
    assert model.apply({"params": params}, jnp.zeros((3, 9, 9))).shape == (3, 2)
    toy = study.Method(
        "toy_net",
        "network",
        "Toy network",
        frozenset({"compare", "timing"}),
        build=lambda ctx: None,
        experiment="toy_net",
    )
    with study.registered(toy):
        assert "toy_net" in study.names("timing", kind="network")
        assert ("toy_net", quick.noise_grid[0]) in study.trainings(quick)
    with pytest.raises(ConfigError, match="cannot be imported"):
        get_model("no_such_module:Net", 2)
    assert isinstance(model, nn.Module)


def test_experiment_docstrings_state_the_command_and_take_budgets_from_the_profile():
    """Config docstrings cannot go stale: every experiment names its command, and none hand-types
    the profile's epochs or object counts (they are the profile's: `shearbridge info`)."""
    import re

    from shearbridge.config.experiments import EXPERIMENTS

    for name, make in EXPERIMENTS.items():
        doc = make.__doc__ or ""
        assert "python -m shearbridge train --config" in doc, name
        assert not re.search(r"\b\d+\s*epochs?\s*x\s*[\d,]+", doc), (
            f"{name}: a hand-typed budget in its docstring"
        )


def test_a_network_refuses_a_stamp_size_it_was_not_trained_for():
    from shearbridge.errors import EstimatorInputError
    from shearbridge.estimators.network import NetworkEstimator

    class _Trained:
        meta = {"stamp_size_px": 53}

        def predict(self, stamps, batch_size):
            return np.zeros((len(stamps), 2))

    net = NetworkEstimator(_Trained(), "toy_net")
    assert net.measure(np.ones((3, 53, 53))).g.shape == (3, 2)
    for size in (41, 64):
        with pytest.raises(
            EstimatorInputError, match=f"trained on 53x53 stamps, got {size}x{size}"
        ):
            net.measure(np.ones((2, size, size)))


def test_a_users_psf_and_pixel_scale_are_checked_against_the_training_data():
    from shearbridge.config import SimConfig
    from shearbridge.errors import EstimatorInputError
    from shearbridge.estimators.network import NetworkEstimator, psf_sigma_px
    from shearbridge.sim import stamps as simmod

    trained_psf = simmod.render_psf(SimConfig())
    np.testing.assert_allclose(
        psf_sigma_px(trained_psf),
        SimConfig().psf_sigma_px,
        rtol=1e-4,
        err_msg="moments of a pixelised Gaussian PSF give its sigma",
    )

    class _Trained:
        meta = {
            "stamp_size_px": 53,
            "pixel_scale_arcsec": 0.141,
            "psf_moment_sigma_px": psf_sigma_px(trained_psf),
        }

        def predict(self, stamps, batch_size):
            return np.zeros((len(stamps), 2))

    net = NetworkEstimator(_Trained(), "toy_net", strict=True)
    assert net.measure(np.ones((1, 53, 53)), trained_psf, 0.141, 1e-3).flags.tolist() == [0]
    wide = simmod.render_psf(SimConfig(psf_sigma_arcsec=0.30))
    with pytest.raises(EstimatorInputError, match="trained for a PSF"):
        net.measure(np.ones((1, 53, 53)), wide, 0.141, 1e-3)
    with pytest.raises(EstimatorInputError, match="px stamps"):
        net.measure(np.ones((1, 53, 53)), trained_psf, 0.2, 1e-3)
    NetworkEstimator(_Trained(), "toy_net").measure(
        np.ones((1, 53, 53)), wide, 0.141, 1e-3
    )  # studies: no check


def test_slow_estimators_report_progress_without_changing_results():
    """The steps' progress bars hang on a callback.

    The estimates are the same with or without it."""
    from shearbridge.config import SimConfig
    from shearbridge.estimators.hsm import HSMEstimator
    from shearbridge.sim import stamps as simmod

    sim = SimConfig()
    rng = np.random.default_rng(5)
    labels = simmod.draw_population(sim, 6, rng)
    images = simmod.render_rows(sim, labels, range(6)) + 1e-4 * rng.standard_normal((6, 53, 53))
    psf = simmod.render_psf(sim)
    quiet = HSMEstimator("REGAUSS").measure(images, psf, 0.141, 1e-4)
    seen: list[int] = []
    loud = HSMEstimator("REGAUSS", progress=seen.append).measure(images, psf, 0.141, 1e-4)
    assert sum(seen) == 6
    np.testing.assert_array_equal(quiet.g, loud.g)


def test_slow_fits_measure_a_fraction_of_the_shear_test_but_never_a_handful():
    fit, net = study.get_method("mlfit"), study.get_method("baseline")
    assert (
        fit.shear_galaxies(2048) == 256 and fit.shear_galaxies(512) == 64
    )  # the paper's sets: an eighth
    assert fit.shear_galaxies(256) == study.MIN_SHEAR_GALAXIES  # the quick shear test: not 32
    assert fit.shear_galaxies(64) == 64  # the quick PSF test: all of it, not 8
    assert fit.shear_galaxies(8) == 8 and net.shear_galaxies(2048) == 2048


def test_a_pair_level_method_runs_at_the_pair_levels_of_every_study_only():
    """ShapeNet is one training per level: the build trains it at the pair levels, where PSFNet
    (trained once) does not replace it, and every plan (trainings, cells, the methods at a level)
    says the same."""
    paper = get_profile("paper")
    pair = study.study_noise(paper, "timing")
    assert (
        study.get_method("shapenet").levels == "pair"
        and study.get_method("psfnet").levels == "grid"
    )
    assert {s for e, s in study.trainings(paper) if e == "shapenet"} == set(pair)
    assert study.study_noise(paper, "compare", "shapenet") == pair
    assert study.study_noise(paper, "bias", "shapenet") == pair, (
        "not at the survey level of the bias table"
    )
    assert study.study_noise(paper, "compare", "psfnet") == paper.noise_grid
    cells = study.cells(paper, "bias_grid")
    assert (
        ("shapenet", "1e-04") not in cells
        and ("shapenet", "1e-05") in cells
        and ("psfnet", "2e-02") in cells
    )
    assert len(cells) == len(set(cells))
    assert "shapenet" not in study.at(paper, "compare", 1e-2) and "psfnet" in study.at(
        paper, "compare", 1e-2
    )
    assert "shapenet" in study.at(paper, "compare", 1e-3)
    with pytest.raises(ConfigError, match="levels must be one of"):
        study.Method(
            "x", "classical", "X", frozenset(), build=lambda c: None, levels="some"
        ).validate()

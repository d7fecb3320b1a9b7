"""Named experiment configs and the command line: lookups, overrides, one-line errors."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import snakemake_env

from shearbridge.cli import main
from shearbridge.config import ConfigError, TrainConfig, get_profile
from shearbridge.config.experiments import (
    EXPERIMENTS,
    experiment_from_dict,
    get_experiment,
    load_experiment,
)

QUICK = get_profile("quick")


# ----------------------------------------------------------------- configs


def test_named_experiments_are_valid_and_named_after_themselves():
    for name in EXPERIMENTS:
        exp = get_experiment(name, QUICK, 1e-5)
        exp.validate()
        assert exp.name == name and exp.noise_sigma == 1e-5 and exp.profile is QUICK
        # ablation steps train for a tenth of the profile's epochs
        # (shearbridge.config.ablation.ablation_epochs)
        epochs = max(1, QUICK.epochs // 10) if name.startswith("abl_") else QUICK.epochs
        if name == "moments_affine":
            epochs = 0  # a least-squares fit, no gradient step
        assert exp.epochs == epochs and exp.patience == QUICK.patience
        assert EXPERIMENTS[name].__doc__ and "Command:" in EXPERIMENTS[name].__doc__


def test_baseline_has_shearnets_hyperparameters():
    t = get_experiment("baseline", QUICK, 1e-3).train
    assert (t.model, t.n_outputs, t.learning_rate, t.weight_decay, t.batch_size) == (
        "enhanced",
        4,
        1e-3,
        1e-4,
        128,
    )
    assert t.standardize_labels
    raw = get_experiment("baseline_raw", QUICK, 1e-3).train
    assert raw == TrainConfig(**{**t.__dict__, "standardize_labels": False})
    assert get_experiment("baseline_2out", QUICK, 1e-3).train.n_outputs == 2


def test_unknown_experiment_lists_known_names():
    with pytest.raises(ConfigError, match=r"unknown experiment 'nope'; known: \[.*'baseline'"):
        get_experiment("nope", QUICK, 1e-5)


def test_override_file_derives_from_a_base(tmp_path):
    toml = tmp_path / "slow_lr.toml"
    toml.write_text(
        'base = "baseline_2out"\nsave_every = 2\n[train]\nlearning_rate = 3e-4\nepochs = 4\n'
    )
    exp = load_experiment(toml, QUICK, 1e-5)
    assert exp.name == "slow_lr" and exp.save_every == 2 and exp.epochs == 4
    assert (
        exp.train.learning_rate == 3e-4 and exp.train.n_outputs == 2
    )  # base kept, field overridden


@pytest.mark.parametrize(
    "data, field",
    [
        ({"train": {"learning_rate": "abc"}}, "train.learning_rate"),
        ({"train": {"lr": 1e-3}}, "train.lr"),
        ({"train": {"batch_size": 0}}, "train.batch_size"),
        ({"train": {"epochs": "abc"}}, "train.epochs"),
        ({"train": {"model_kwargs": 3}}, "train.model_kwargs"),
        ({"epochz": 3}, "epochz"),
        ({"save_every": "often"}, "save_every"),
        ({"base": "nope"}, "nope"),
    ],
)
def test_malformed_override_is_one_config_error_naming_the_field(data, field):
    with pytest.raises(ConfigError) as info:
        experiment_from_dict(data, QUICK, 1e-5)
    assert field in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------- command line


def run_cli(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_info_reports_the_chosen_profile(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    monkeypatch.setenv("SHEARBRIDGE_PROFILE", "paper")
    status, out, _ = run_cli(capsys, "info", "--profile", "quick")  # the flag beats the environment
    info = json.loads(out)
    assert status == 0 and info["profile"]["name"] == "quick"
    assert info["profile_dir"] == str(tmp_path / "quick")
    status, out, _ = run_cli(capsys, "info")
    assert json.loads(out)["profile"]["name"] == "paper"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (
            ["train", "--config", "nope", "--noise", "1e-5", "--profile", "quick"],
            "unknown experiment 'nope'",
        ),
        (
            ["train", "--config", "baseline", "--noise", "1e-5", "--profile", "huge"],
            "unknown profile 'huge'",
        ),
        (["summarize", "nope", "--profile", "quick"], "unknown summary 'nope'"),
        (
            ["evaluate", "--config", "missing.json", "--noise", "1e-5", "--profile", "quick"],
            "missing experiment config",
        ),
    ],
)
def test_errors_are_one_line_on_stderr_with_status_2(capsys, argv, needle):
    status, out, err = run_cli(capsys, *argv)
    assert status == 2 and out == ""
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1, err


def test_malformed_config_file_through_the_cli(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"base": "baseline", "train": {"learning_rate": "abc"}}))
    status, _, err = run_cli(
        capsys, "train", "--config", str(bad), "--noise", "1e-5", "--profile", "quick"
    )
    assert (
        status == 2
        and "train.learning_rate must be a number, got 'abc'" in err
        and err.count("\n") == 1
    )


def test_evaluate_without_a_trained_model_is_a_clean_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    status, _, err = run_cli(
        capsys, "evaluate", "--config", "baseline", "--noise", "1e-3", "--profile", "quick"
    )
    assert (
        status == 2
        and "no trained model" in err
        and "python -m shearbridge train --config baseline" in err
    )


@pytest.mark.pipeline
def test_python_dash_m_entry_point(tmp_path):
    env = {**os.environ, "SHEARBRIDGE_DATA": str(tmp_path)}
    ok = subprocess.run(
        [sys.executable, "-m", "shearbridge", "info", "--profile", "quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["profile"]["name"] == "quick", ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "shearbridge", "train", "--config", "nope", "--noise", "1e-5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown experiment")


def test_robustness_runs_every_named_set_in_one_process(capsys, monkeypatch):
    from shearbridge.steps import robustness

    calls = []

    def fake(method, dataset, profile, sigma):
        calls.append((method, dataset, profile.name, sigma))
        return {"dataset": dataset}

    monkeypatch.setattr(robustness, "run_robustness", fake)
    assert (
        main(
            [
                "robustness",
                "--method",
                "hsm_regauss",
                "--dataset",
                "test",
                "test_exp",
                "--noise",
                "1e-3",
                "--profile",
                "quick",
            ]
        )
        == 0
    )
    assert calls == [
        ("hsm_regauss", "test", "quick", 1e-3),
        ("hsm_regauss", "test_exp", "quick", 1e-3),
    ]
    assert capsys.readouterr().out.count('"dataset"') == 2


def _with_info_run(monkeypatch, run):
    """Make the ``info`` command run ``run(args)`` instead."""
    import dataclasses

    import shearbridge.cli as cli

    real = cli.commands
    monkeypatch.setattr(
        cli, "commands", lambda: {**real(), "info": dataclasses.replace(real()["info"], run=run)}
    )


def test_a_real_bug_is_not_dressed_up_as_a_usage_error(capsys, monkeypatch):
    """Only ShearbridgeError becomes ``error: ...`` with status 2; a plain ValueError is a bug."""
    import shearbridge.cli as cli

    def buggy(args):
        raise ValueError("an internal bug")

    _with_info_run(monkeypatch, buggy)
    with pytest.raises(ValueError, match="an internal bug"):
        cli.main(["info"])


def test_every_package_error_is_also_its_builtin():
    from shearbridge import errors

    assert issubclass(errors.ConfigError, ValueError) and issubclass(
        errors.ConfigError, errors.ShearbridgeError
    )
    assert issubclass(errors.MissingFileError, FileNotFoundError)
    assert issubclass(errors.NgmixUnavailable, ImportError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.ShearbridgeError), name


def test_ctrl_c_ends_a_run_with_one_line(capsys, monkeypatch):
    import shearbridge.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    _with_info_run(monkeypatch, interrupted)
    assert cli.main(["info"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted: info stopped") and err.count("\n") == 1


def test_help_lists_every_command_in_plain_text():
    from shearbridge.cli import build_parser, commands

    text = build_parser().format_help()
    assert "``" not in text and ":mod:" not in text
    sub = build_parser()._subparsers._group_actions[0]
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert set(helps) == set(commands()), "every command has a one-line description"
    assert all(h and "``" not in h for h in helps.values())


def test_list_shows_datasets_experiments_and_methods_with_their_state(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    (tmp_path / "quick" / "datasets" / "test").mkdir(parents=True)
    (tmp_path / "quick" / "datasets" / "test" / "manifest.json").write_text("{}")
    status, out, _ = run_cli(capsys, "list", "--profile", "quick")
    assert status == 0
    lines = {
        line.split()[0]: line for line in out.splitlines() if line[:2] == "  " and line[2] != " "
    }
    assert lines["test"].endswith("built") and lines["train"].endswith("-")
    assert "mlfit" in lines and "classical" in lines["mlfit"] and "[compare" in lines["mlfit"]
    assert lines["baseline_raw"].split()[-1] == "-"


def test_measure_your_own_stamps_from_the_command_line(capsys, tmp_path):
    """`measure` writes a catalogue of g1, g2, flags for any registered method."""
    import galsim

    from shearbridge.config import SimConfig
    from shearbridge.sim import stamps as simmod

    psf = galsim.Gaussian(sigma=0.25)
    ims = [
        galsim.Convolve(galsim.Gaussian(sigma=0.4, flux=2.0).shear(g1=g, g2=0.0), psf)
        .drawImage(nx=53, ny=53, scale=0.141)
        .array
        for g in (0.1, -0.05)
    ]
    np.save(tmp_path / "my.npy", np.array(ims))
    np.save(tmp_path / "psf.npy", simmod.render_psf(SimConfig()))
    args = [
        "measure",
        "--method",
        "hsm_regauss",
        "--stamps",
        str(tmp_path / "my.npy"),
        "--psf",
        str(tmp_path / "psf.npy"),
        "--noise",
        "1e-4",
        "--profile",
        "quick",
    ]
    status, out, err = run_cli(capsys, *args, "--out", str(tmp_path / "cat.csv"))
    assert status == 0, err
    rows = (tmp_path / "cat.csv").read_text().splitlines()
    assert rows[0].startswith("index,g1,g2,flags") and len(rows) == 3
    g1 = [float(r.split(",")[1]) for r in rows[1:]]
    np.testing.assert_allclose(
        g1, [0.1, -0.05], atol=5e-3, err_msg="REGAUSS recovers the applied shear"
    )
    status, _, err = run_cli(capsys, *args, "--out", str(tmp_path / "cat.fits"))
    assert status == 2 and "must end in .csv or .npz" in err
    status, _, err = run_cli(
        capsys, *args[:4], str(tmp_path / "nope.npy"), *args[5:], "--out", str(tmp_path / "c.csv")
    )
    assert status == 2 and "nope.npy does not exist" in err
    status, _, err = run_cli(
        capsys, "measure", "--method", "crlb", *args[3:], "--out", str(tmp_path / "c.csv")
    )
    assert status == 2 and "does not measure stamps" in err


def test_a_network_without_weights_names_the_command_that_trains_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    import shearbridge

    with pytest.raises(
        FileNotFoundError, match=r"python -m shearbridge train --config shapenet --noise 0.001"
    ):
        shearbridge.estimator("shapenet", 1e-3, profile=get_profile("quick"))


# ------------------------------------------------- one command line, assembled from the steps

ROOT = Path(__file__).resolve().parents[1]
STEPS_DIR = ROOT / "src" / "shearbridge" / "steps"


def test_the_command_line_module_is_short():
    lines = (ROOT / "src" / "shearbridge" / "cli.py").read_text().splitlines()
    assert len(lines) <= 200, "cli.py assembles the steps' commands; their code lives in the steps"
    assert max(map(len, lines)) <= 100


def test_no_step_keeps_a_command_line_of_its_own():
    """Steps declare COMMANDS for `python -m shearbridge`; none has a `main()` or a __main__
    block."""
    for path in sorted(STEPS_DIR.glob("*.py")):
        body = ast.parse(path.read_text()).body
        functions = {n.name for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert "main" not in functions, f"steps/{path.name} defines main()"
        assert not any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in body), (
            path.name
        )


def _snakefile_shells() -> dict[str, str]:
    """Every rule of the quick profile's whole plan and its shell command, from a Snakemake dry run
    (rules made in loops included) of every number script's outputs."""
    from shearbridge.paper.outputs import script_outputs

    quick = get_profile("quick")
    targets = [
        o for s in sorted((ROOT / "src/scripts").glob("num_*.py")) for o in script_outputs(s, quick)
    ]
    env = snakemake_env(SHEARBRIDGE_PROFILE="quick")
    proc = subprocess.run(
        [
            "snakemake",
            "-n",
            "-p",
            "--forceall",
            "--nolock",
            "--cores",
            "1",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(ROOT),
            *targets,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shells = {}
    for job in re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout):
        m = re.match(r"(?:local)?rule (\w+):", job)
        if m:
            lines = [ln.strip() for ln in job.split("\n\n", 1)[-1].splitlines() if ln.strip()]
            shells.setdefault(m.group(1), lines[0] if lines else "")
    return shells


@pytest.mark.pipeline
def test_every_compute_rule_runs_a_command_of_the_command_line():
    shells = _snakefile_shells()
    assert {
        "dataset",
        "train",
        "compare",
        "floor",
        "tune_weight_fractions",
        "tune_anacal",
        "summary_floor",
        "compare_numbers",
    } <= set(shells)
    bad = {
        r: c
        for r, c in shells.items()
        if not re.fullmatch(r"python src/scripts/num_\w+\.py", c)
        and "python -m shearbridge " not in c
    }
    assert not bad, f"rules that neither run a number script nor `python -m shearbridge CMD`: {bad}"
    assert shells["floor"].startswith("python -m shearbridge floor ")
    assert shells["tune_weight_fractions"].startswith("python -m shearbridge tune ")
    assert shells["tune_anacal"].startswith("python -m shearbridge tune-anacal ")
    assert shells["summary_floor"].startswith("python -m shearbridge summarize floor ")
    assert "-m shearbridge.steps" not in (ROOT / "Snakefile").read_text()


def test_every_step_command_is_in_the_help():
    """Each COMMANDS of a step module is assembled into `python -m shearbridge --help`."""
    import importlib

    from shearbridge import cli

    text = subprocess.run(
        [sys.executable, "-m", "shearbridge", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    flat = " ".join(text.split())
    sub = cli.build_parser()._subparsers._group_actions[0]
    declared = []
    for path in sorted(STEPS_DIR.glob("*.py")):
        for cmd in getattr(
            importlib.import_module(f"shearbridge.steps.{path.stem}"), "COMMANDS", ()
        ):
            assert path.stem in cli.STEPS, (
                f"steps/{path.name} declares commands the CLI does not load"
            )
            declared.append(cmd.name)
            assert re.search(rf"^    {re.escape(cmd.name)}\s", text, re.M), cmd.name
            assert " ".join(cmd.help.split()) in flat, cmd.name
            assert "usage: shearbridge " + cmd.name in " ".join(
                sub.choices[cmd.name].format_help().split()
            )
    assert sorted(declared) == sorted(cli.commands())
    assert {"floor", "tune", "tune-anacal", "measure", "list", "summarize", "train"} <= set(
        declared
    )


def test_help_starts_without_jax_or_galsim():
    """The steps import their heavy dependencies where they use them: the help is instant."""
    code = (
        "import sys, shearbridge.cli as c; c.build_parser(); "
        "print([m for m in ('jax', 'galsim', 'flax', 'scipy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["floor"], "generate it with: python -m shearbridge simulate --dataset test"),
        (["tune"], "generate it with: python -m shearbridge simulate --dataset train"),
        (["tune-anacal"], "generate it with: python -m shearbridge simulate --dataset train"),
        (["summarize", "floor"], "floor.json: run `python -m shearbridge floor --profile quick`"),
    ],
)
def test_the_former_module_steps_are_commands(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    status, out, err = run_cli(capsys, *argv, "--profile", "quick")
    assert status == 2 and needle in err and err.count("\n") == 1, err


def test_rules_made_in_a_loop_read_the_loop_through_params():
    """A rule's shell command runs after the Snakefile's loop has moved on: a loop variable in an
    f-string shell would run the last rule's command in every rule of the loop."""
    text = (ROOT / "Snakefile").read_text()
    for loop in re.finditer(r"^for (.+?) in .*?:\n(.*?)(?=^\S)", text, re.S | re.M):
        names = re.findall(r"\w+", loop.group(1))
        shell = re.search(r"shell:\n\s+(.*)", loop.group(2))
        assert shell, loop.group(0)[:80]
        assert not shell.group(1).startswith("f"), f"an f-string shell in a loop: {shell.group(1)}"
        assert not any(re.search(rf"\b{n}\b", shell.group(1)) for n in names), shell.group(1)

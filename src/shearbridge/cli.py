"""Command line: ``python -m shearbridge {simulate,train,evaluate,summarize,info}``.

Thin by design: parse, look up the profile and the experiment, call the
library. ``--profile NAME`` overrides ``$SHEARBRIDGE_PROFILE`` for this call.
Configuration and input errors print one line ``error: ...`` on stderr and
exit with status 2.

Examples::

    python -m shearbridge simulate --dataset train --profile quick --workers 2
    python -m shearbridge train --config baseline --noise 1e-5 --profile quick
    python -m shearbridge evaluate --config baseline --noise 1e-5 --profile quick
    python -m shearbridge summarize baseline --profile quick
    python -m shearbridge train --config my_override.toml --noise 1e-3
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import ConfigError, Profile, active_profile, get_profile

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shearbridge", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add_profile(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", help="profile name (default: $SHEARBRIDGE_PROFILE or 'paper')")

    def add_experiment(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config", required=True, help="experiment name, or a .json/.toml override file"
        )
        p.add_argument("--noise", required=True, type=float, help="pixel noise sigma (image units)")
        add_profile(p)

    p = sub.add_parser(
        "train", help="train one experiment at one noise level (resumes if interrupted)"
    )
    add_experiment(p)
    p.add_argument(
        "--workdir",
        type=Path,
        help="run directory (default: the profile's runs/<config>/noise<tag>)",
    )
    p.add_argument("--stop-after-epoch", type=int, help="stop after this many epochs in total")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("evaluate", help="evaluate a trained run on a test set")
    add_experiment(p)
    p.add_argument("--workdir", type=Path, help="run directory (default as for train)")
    p.add_argument("--dataset", help="test dataset name (default: the experiment's test set)")

    p = sub.add_parser("simulate", help="generate one dataset of the profile")
    p.add_argument("--dataset", required=True, help="dataset name, e.g. train, test, shear")
    add_profile(p)
    p.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("summarize", help="write one figure summary under src/data/summary/")
    p.add_argument("what", help="summary name, e.g. stamps, translation, baseline")
    add_profile(p)

    p = sub.add_parser("diagnose", help="layer-by-layer information diagnosis of the trained baselines")
    add_profile(p)

    p = sub.add_parser("crlb", help="per-galaxy Cramer-Rao bounds of the comparison set (test objects)")
    add_profile(p)

    for name, helptext in (("compare", "RMSE, RMSE/CRLB and throughput of one method at one noise level"),
                           ("bias", "m and c of one method on the paired shear-test set at one noise level")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--method", required=True, help="baseline, mlfit, hsm_regauss, hsm_ksb or ngmix")
        p.add_argument("--noise", required=True, type=float, help="pixel noise sigma (image units)")
        add_profile(p)

    p = sub.add_parser("info", help="show the active profile and where data lives")
    add_profile(p)
    return parser


def _profile(args: argparse.Namespace) -> Profile:
    return get_profile(args.profile) if args.profile else active_profile()


def _experiment(args: argparse.Namespace):
    from .configs import resolve_experiment

    return resolve_experiment(args.config, _profile(args), args.noise)


def _workdir(args: argparse.Namespace, exp) -> Path:
    from .paths import run_dir

    return args.workdir or run_dir(exp.name, exp.noise_sigma, exp.profile)


def _train(args: argparse.Namespace) -> None:
    from .train import train_and_evaluate

    exp = _experiment(args)
    metrics = train_and_evaluate(
        exp,
        _workdir(args, exp),
        stop_after_epoch=args.stop_after_epoch,
        progress=not args.no_progress,
    )
    print(json.dumps(metrics, indent=2, sort_keys=True, default=str))


def _evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate_run

    exp = _experiment(args)
    test = None
    if args.dataset:
        from .data import load_dataset

        test = load_dataset(args.dataset, profile=exp.profile)
    result = evaluate_run(_workdir(args, exp), exp, test)
    print(json.dumps({"path": result["path"], "shear": result["shear"]}, indent=2, sort_keys=True))


def _simulate(args: argparse.Namespace) -> None:
    from .data import generate_dataset

    path = generate_dataset(
        args.dataset, profile=_profile(args), workers=args.workers, progress=not args.no_progress
    )
    print(path)


def _summarize(args: argparse.Namespace) -> None:
    from .summaries import write_summary

    write_summary(args.what, _profile(args))


def _diagnose(args: argparse.Namespace) -> None:
    from .diagnosis import run_diagnosis

    run_diagnosis(_profile(args))


def _crlb(args: argparse.Namespace) -> None:
    from .compare import compute_crlb

    print(compute_crlb(_profile(args)))


def _compare(args: argparse.Namespace) -> None:
    from .compare import run_bias, run_method

    run = run_method if args.command == "compare" else run_bias
    result = run(args.method, _profile(args), args.noise)
    print(json.dumps(result, indent=2, sort_keys=True, default=str))


def _info(args: argparse.Namespace) -> None:
    from . import __version__, paths
    from .config import to_dict

    profile = _profile(args)
    info = {
        "version": __version__,
        "profile": to_dict(profile),
        "data_root": str(paths.data_root()),
        "profile_dir": str(paths.profile_dir(profile)),
        "results_dir": str(paths.results_dir(profile)),
    }
    print(json.dumps(info, indent=2, sort_keys=True))


_COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "simulate": _simulate,
    "summarize": _summarize,
    "diagnose": _diagnose,
    "crlb": _crlb,
    "compare": _compare,
    "bias": _compare,
    "info": _info,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 on a usage or input error)."""
    args = build_parser().parse_args(argv)
    try:
        _COMMANDS[args.command](args)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

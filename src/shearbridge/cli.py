"""Command line: ``python -m shearbridge COMMAND`` (``--help`` lists them; ``list`` shows what is built).

Thin by design: parse, look up the profile and the experiment, call the
library. ``--profile NAME`` overrides ``$SHEARBRIDGE_PROFILE`` for this call.
Errors the package reports itself (:class:`shearbridge.errors.ShearbridgeError`: a
malformed config, bad input, a missing file) print one line ``error: ...`` on stderr
and exit with status 2; anything else is a bug and raises with its traceback.

``train`` and ``timing``, run as ``python -m shearbridge``, restart themselves
once with the fast-training process environment of
:func:`shearbridge.train.runtime.reexec_with_recommended_env` (huge-page malloc,
XLA flags) unless it is already set; ``--threads N`` then restricts the
process to N free CPU cores (:func:`shearbridge.train.parallel.claim_cores`).

Examples::

    python -m shearbridge simulate --dataset train --profile quick --workers 2
    python -m shearbridge train --config baseline --noise 1e-5 --profile quick
    python -m shearbridge evaluate --config baseline --noise 1e-5 --profile quick
    python -m shearbridge summarize baseline --profile quick
    python -m shearbridge train --config my_override.toml --noise 1e-3
    python -m shearbridge train --config baseline --noise 1e-3 --threads 1
    python -m shearbridge train --config baseline --noise 1e-3 --coordinator host0:4321 --num-processes 2 --process-id 0
    python -m shearbridge timing --networks baseline --profile quick
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from shearbridge import study
from shearbridge.config import Profile, active_profile, get_profile
from shearbridge.errors import ShearbridgeError
from shearbridge.train.distributed import add_distributed_args, init_from_args

__all__ = ["build_parser", "main"]


def _choices(*studies: str | None) -> str:
    """Help text: the registry's methods of ``studies`` (:mod:`shearbridge.study`)."""
    names: list[str] = []
    for st in filter(None, studies):
        names += [n for n in study.names(st, available_only=False) if n not in names]
    return "a registered method: " + ", ".join(names)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shearbridge",
        description="ShearBridge: simulate galaxies, train networks, measure shear with every method "
                    "and write the paper's results. Each command runs one pipeline step; "
                    "'shearbridge list' shows what exists and what is built.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add_profile(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", help="profile name (default: $SHEARBRIDGE_PROFILE or 'paper')")

    def add_threads(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--threads",
            type=int,
            help="restrict the process to this many free CPU cores (default: all)",
        )

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
    add_threads(p)
    p.add_argument(
        "--devices",
        type=int,
        help="devices for data-parallel training (default: all that divide the batch)",
    )
    add_distributed_args(p)  # several processes/hosts: shearbridge.train.distributed

    p = sub.add_parser(
        "timing", help="galaxies/s of every method, side by side in one process (timing.json)"
    )
    add_profile(p)
    p.add_argument(
        "--networks", default="baseline",
        help="comma-separated networks to time (the study times: "
             + ",".join(study.names("timing", kind="network", available_only=False)) + ")",
    )
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per method (median)")
    add_threads(p)

    p = sub.add_parser("evaluate", help="evaluate a trained run on a test set")
    add_experiment(p)
    p.add_argument("--workdir", type=Path, help="run directory (default as for train)")
    p.add_argument("--dataset", help="test dataset name (default: the experiment's test set)")

    p = sub.add_parser("simulate", help="generate one dataset of the profile")
    p.add_argument("--dataset", required=True, help="dataset name, e.g. train, test, shear")
    add_profile(p)
    p.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--force", action="store_true", help="regenerate even if an up-to-date copy exists")

    p = sub.add_parser("summarize", help="write one figure summary under src/data/summary/")
    p.add_argument("what", help="summary name, e.g. stamps, translation, baseline")
    add_profile(p)

    p = sub.add_parser("diagnose", help="layer-by-layer information diagnosis of the trained baselines")
    add_profile(p)
    p.add_argument("--experiments", default="baseline",
                   help="comma-separated experiments; the first gets every diagnosis, the others the "
                        "per-layer information only (default: baseline)")

    p = sub.add_parser("crlb", help="per-galaxy Cramer-Rao bounds of the comparison set (test objects)")
    add_profile(p)
    p.add_argument("--dataset", help="a robustness set: finite-difference GalSim bound of its first "
                   "galaxies (shearbridge.steps.robustness) instead of the autodiff bound of the test set")

    p = sub.add_parser("robustness", help="RMSE/CRLB of one method on robustness sets at one noise level")
    p.add_argument("--method", required=True, help=_choices("robustness"))
    p.add_argument("--dataset", required=True, nargs="+", help="one or more of test, test_exp, test_sersic, "
                   "test_bulge_disk, test_moffat, test_wide_psf (one process: compiled once)")
    p.add_argument("--noise", required=True, type=float, help="pixel noise sigma (image units)")
    add_profile(p)

    for name, helptext in (("compare", "RMSE, RMSE/CRLB and throughput of one method at one noise level"),
                           ("bias", "m and c of one method on the paired shear-test set at one noise level"),
                           ("yardstick", "one method on the CRLB galaxies in two noise realisations (n_eff)"),
                           ("metacal", "metacal-calibrated m and c of one method on the paired shear-test set")):
        p = sub.add_parser(name, help=helptext)
        studies = {"compare": ("compare", "ablation"), "metacal": ("metacal",)}.get(name, ("bias_grid", "bias"))
        p.add_argument("--method", required=True, help=_choices(*studies))
        p.add_argument("--noise", required=True, type=float, help="pixel noise sigma (image units)")
        if name == "bias":  # the anisotropic-PSF set (results kind bias_psf)
            p.add_argument("--psf-test", action="store_true", help="the test with the anisotropic PSF (leakage)")
        add_profile(p)

    p = sub.add_parser("population", help="the population study: its test sets, PSFNet on fresh noise, its cell table")
    p.add_argument("action", choices=("sets", "train", "evaluate"),
                   help="sets (render and bound the cells), train (every seed) or evaluate (the cell table)")
    add_profile(p)
    add_threads(p)

    p = sub.add_parser("learning", help="RMSE/CRLB of every snapshot of a run against training compute")
    p.add_argument("--config", required=True, help="experiment name (trained with save_every > 0)")
    p.add_argument("--noise", required=True, type=float, help="pixel noise sigma (image units)")
    add_profile(p)

    p = sub.add_parser("info", help="show the active profile and where data lives")
    add_profile(p)

    p = sub.add_parser("list", help="experiments, datasets and methods, and which are built")
    add_profile(p)

    p = sub.add_parser("measure", help="measure g1, g2 of your own stamps with any registered method")
    p.add_argument("--method", required=True, help="a method of 'shearbridge list' (networks: the profile's "
                   "weights trained at --noise)")
    p.add_argument("--stamps", required=True, type=Path, help=".npy of shape (N, S, S) or (S, S), image units")
    p.add_argument("--psf", required=True, type=Path, help=".npy (S, S): the PSF drawn like the stamps")
    p.add_argument("--noise", required=True, type=float, help="pixel noise sigma of the stamps (image units)")
    p.add_argument("--pixel-scale", type=float, help="arcsec per pixel (default: the profile's simulation, 0.141)")
    p.add_argument("--out", required=True, type=Path, help="catalogue to write: .csv or .npz")
    add_profile(p)
    return parser


def _profile(args: argparse.Namespace) -> Profile:
    return get_profile(args.profile) if args.profile else active_profile()


def _experiment(args: argparse.Namespace):
    from shearbridge.config.experiments import resolve_experiment

    return resolve_experiment(args.config, _profile(args), args.noise)


def _workdir(args: argparse.Namespace, exp) -> Path:
    from shearbridge.paths import run_dir

    return args.workdir or run_dir(exp.name, exp.noise_sigma, exp.profile)


def _train(args: argparse.Namespace) -> None:
    from shearbridge.train.loop import train_and_evaluate

    init_from_args(args)  # jax.distributed first, when several processes train together
    exp = _experiment(args)
    metrics = train_and_evaluate(
        exp,
        _workdir(args, exp),
        stop_after_epoch=args.stop_after_epoch,
        progress=not args.no_progress,
        devices=args.devices,
    )
    print(json.dumps(metrics, indent=2, sort_keys=True, default=str))


def _evaluate(args: argparse.Namespace) -> None:
    from shearbridge.steps.evaluate import evaluate_run

    exp = _experiment(args)
    test = None
    if args.dataset:
        from shearbridge.sim.datasets import load_dataset

        test = load_dataset(args.dataset, profile=exp.profile)
    result = evaluate_run(_workdir(args, exp), exp, test)
    print(json.dumps({"path": result["path"], "shear": result["shear"]}, indent=2, sort_keys=True))


def _simulate(args: argparse.Namespace) -> None:
    from shearbridge.sim.datasets import generate_dataset

    path = generate_dataset(
        args.dataset, profile=_profile(args), workers=args.workers, progress=not args.no_progress,
        force=args.force,
    )
    print(path)


def _summarize(args: argparse.Namespace) -> None:
    from shearbridge.summaries.collect import write_summary

    write_summary(args.what, _profile(args))


def _diagnose(args: argparse.Namespace) -> None:
    from shearbridge.steps.diagnose import run_diagnosis

    run_diagnosis(_profile(args), experiments=[e.strip() for e in args.experiments.split(",") if e.strip()])


def _crlb(args: argparse.Namespace) -> None:
    if args.dataset:
        from shearbridge.steps.robustness import compute_fd_crlb

        print(compute_fd_crlb(args.dataset, _profile(args)))
        return
    from shearbridge.steps.crlb import compute_crlb

    print(compute_crlb(_profile(args)))


def _population(args: argparse.Namespace) -> None:
    from shearbridge.steps import population as pop

    step = {"sets": pop.prepare_sets, "train": pop.train_population, "evaluate": pop.evaluate_population}
    out = step[args.action](_profile(args))
    brief = {k: v for k, v in out.items() if not isinstance(v, (dict, list))}
    brief.update({f"{k}_train_seconds": {n: round(h["train_seconds"], 1) for n, h in out[k].items()}
                  for k in ("seeds", "ablations") if isinstance(out.get(k), dict)})
    print(json.dumps(brief, default=str))


def _robustness(args: argparse.Namespace) -> None:
    from shearbridge.steps.robustness import run_robustness

    profile = _profile(args)
    for dataset in args.dataset:
        result = run_robustness(args.method, dataset, profile, args.noise)
        print(json.dumps(result, indent=2, sort_keys=True, default=str))


def _compare(args: argparse.Namespace) -> None:
    from shearbridge.steps.bias import run_bias
    from shearbridge.steps.compare import run_method
    from shearbridge.steps.metacal import run_metacal
    from shearbridge.steps.yardstick import run_yardstick

    run = {"compare": run_method, "yardstick": run_yardstick, "metacal": run_metacal}.get(args.command)
    result = (run(args.method, _profile(args), args.noise) if run else
              run_bias(args.method, _profile(args), args.noise, kind="bias_psf" if args.psf_test else "bias"))
    print(json.dumps(result, indent=2, sort_keys=True, default=str))


def _learning(args: argparse.Namespace) -> None:
    from shearbridge.steps.learning import learning_curve

    out = learning_curve(_profile(args), args.config, args.noise)
    print(json.dumps({k: v for k, v in out.items() if k != "points"}, indent=2, sort_keys=True))


def _timing(args: argparse.Namespace) -> None:
    from shearbridge.steps.timing import run_timing

    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    path = run_timing(_profile(args), networks, repeats=args.repeats)
    print(path)


def _info(args: argparse.Namespace) -> None:
    from shearbridge import __version__, paths
    from shearbridge.config import to_dict

    profile = _profile(args)
    info = {
        "version": __version__,
        "profile": to_dict(profile),
        "data_root": str(paths.data_root()),
        "profile_dir": str(paths.profile_dir(profile)),
        "results_dir": str(paths.results_dir(profile)),
    }
    print(json.dumps(info, indent=2, sort_keys=True))


def _list(args: argparse.Namespace) -> None:
    from shearbridge import paths
    from shearbridge.config.experiments import EXPERIMENTS
    from shearbridge.sim.catalogue import dataset_specs

    profile = _profile(args)

    def mark(done: bool) -> str:
        return "built" if done else "-"

    print(f"profile {profile.name}: noise levels {', '.join(f'{s:g}' for s in profile.noise_grid)}")
    print("\ndatasets (python -m shearbridge simulate --dataset NAME):")
    for name, spec in dataset_specs(profile).items():
        built = (paths.dataset_dir(name, profile) / "manifest.json").exists()
        print(f"  {name:<18} {spec.n_objects:>7} objects  {mark(built)}")
    print("\nexperiments (python -m shearbridge train --config NAME --noise SIGMA): trained at")
    for name in EXPERIMENTS:
        done = [f"{s:g}" for s in profile.noise_grid
                if (paths.run_dir(name, s, profile) / "model.msgpack").exists()]
        print(f"  {name:<18} {', '.join(done) if done else '-'}")
    print("\nmethods (python -m shearbridge compare --method NAME --noise SIGMA):")
    for m in study.methods(available_only=False):
        state = "available" if m.available() else "not installed"
        studies = ",".join(s for s in study.STUDIES if s in m.studies) or "-"
        print(f"  {m.name:<18} {m.kind:<9} {state:<13} {m.label}  [{studies}]")


def _measure(args: argparse.Namespace) -> None:
    from shearbridge.config import SimConfig
    from shearbridge.steps.measure import load_stamps, user_estimator, write_catalogue

    stamps = load_stamps(args.stamps, "stamps", (2, 3))
    psf = load_stamps(args.psf, "PSF", (2,))
    scale = args.pixel_scale if args.pixel_scale is not None else SimConfig().pixel_scale_arcsec
    est = user_estimator(args.method, args.noise, _profile(args))
    result = est.measure(stamps, psf, scale, args.noise)
    path = write_catalogue(args.out, result)
    print(json.dumps({"catalogue": str(path), "n": len(result), "n_flagged": int((result.flags != 0).sum())}))


_COMMANDS = {
    "train": _train, "evaluate": _evaluate, "simulate": _simulate, "summarize": _summarize, "diagnose": _diagnose,
    "crlb": _crlb, "compare": _compare, "bias": _compare, "yardstick": _compare, "metacal": _compare,
    "robustness": _robustness, "population": _population,
    "timing": _timing, "learning": _learning, "info": _info, "list": _list,
    "measure": _measure,
}
FAST_ENV_COMMANDS = ("train", "timing", "population")  # restarted with runtime.recommended_env()


def _process_setup(args: argparse.Namespace) -> None:
    """Fast-training environment (re-exec) and CPU cores, for the commands that train."""
    from shearbridge.train.runtime import reexec_with_recommended_env

    reexec_with_recommended_env()  # returns at once when already set (or after the restart)
    if getattr(args, "threads", None) is not None:
        from shearbridge.train.parallel import claim_cores

        claim_cores(args.threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 on a usage or input error)."""
    args = build_parser().parse_args(argv)
    try:
        if argv is None and args.command in FAST_ENV_COMMANDS:  # a process entry point only
            _process_setup(args)
        _COMMANDS[args.command](args)
    except ShearbridgeError as exc:  # misuse the package reports itself; anything else is a bug
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outputs are written atomically: nothing half-written is left
        print(f"interrupted: {args.command} stopped (finished outputs are kept; rerun to continue)",
              file=sys.stderr)
        return 130
    return 0

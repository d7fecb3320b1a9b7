"""Pipeline step: train one experiment at one noise level (:mod:`shearbridge.train.loop`).

``python -m shearbridge train --config baseline --noise 1e-5 --profile quick`` trains (resuming
an interrupted run) into the profile's ``runs/<config>/noise<tag>/`` and prints the final
metrics. Run as a process it restarts once in the fast-training environment (``fast_env``);
``--coordinator``, ``--num-processes``, ``--process-id``: several processes train together
(:mod:`shearbridge.train.distributed`).
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import Any

from shearbridge.steps.command import (
    Command,
    add_experiment,
    add_threads,
    experiment_of,
    print_json,
)

__all__ = ["COMMANDS", "workdir_of"]


def workdir_of(args: Namespace, exp: Any) -> Path:
    """``--workdir``, else the profile's run folder of the experiment at its noise level."""
    from shearbridge.layout import Layout

    return args.workdir or Layout(exp.profile).run(exp.name, exp.noise_sigma)


def _arguments(p: ArgumentParser) -> None:
    from shearbridge.train.distributed import add_distributed_args

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


def _train(args: Namespace) -> None:
    from shearbridge.train.distributed import init_from_args
    from shearbridge.train.loop import train_and_evaluate

    init_from_args(args)  # jax.distributed first, when several processes train together
    exp = experiment_of(args)
    metrics = train_and_evaluate(
        exp,
        workdir_of(args, exp),
        stop_after_epoch=args.stop_after_epoch,
        progress=not args.no_progress,
        devices=args.devices,
    )
    print_json(metrics)


COMMANDS = (
    Command(
        "train",
        "train one experiment at one noise level (resumes if interrupted)",
        _arguments,
        _train,
        fast_env=True,
    ),
)

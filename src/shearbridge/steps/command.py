"""A step's command line: what ``python -m shearbridge NAME`` parses and runs.

Each step module declares its commands next to its code, as a module-level ``COMMANDS`` tuple of
:class:`Command`; :mod:`shearbridge.cli` assembles the parser from them and dispatches. The
helpers below add the arguments many commands share (``--profile``, ``--threads``, ``--noise``,
an experiment's ``--config``/``--noise``, a registered ``--method``) and turn them back into
objects (:func:`profile_of`, :func:`experiment_of`). A step module keeps its heavy imports inside
its functions, so that ``python -m shearbridge --help`` imports every step quickly.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser, Namespace
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shearbridge.config import Profile, active_profile, get_profile

__all__ = [
    "Command",
    "profile_command",
    "add_profile",
    "add_threads",
    "add_noise",
    "add_experiment",
    "add_method",
    "method_at_noise",
    "method_choices",
    "profile_of",
    "experiment_of",
    "print_json",
]


@dataclass(frozen=True)
class Command:
    """One subcommand: ``python -m shearbridge NAME ...``.

    ``help`` is its line in ``--help``; ``description`` (default: ``help``) heads its own
    ``NAME --help``, printed as written. ``add_arguments(parser)`` declares its arguments,
    ``run(args)`` does the work (a :class:`~shearbridge.errors.ShearbridgeError` becomes one
    ``error: ...`` line). ``fast_env``: run as a process, it restarts itself once in the
    fast-training environment (:func:`shearbridge.train.runtime.reexec_with_recommended_env`) and
    honours ``--threads``.
    """

    name: str
    help: str
    add_arguments: Callable[[ArgumentParser], None]
    run: Callable[[Namespace], None]
    fast_env: bool = False
    description: str | None = None


def profile_command(name: str, help: str, run: Callable[[Profile], Path]) -> Command:
    """A command whose only argument is ``--profile``: runs ``run(profile)`` and prints the path it
    wrote."""
    return Command(name, help, add_profile, lambda args: print(run(profile_of(args))))


def add_profile(p: ArgumentParser) -> None:
    p.add_argument("--profile", help="profile name (default: $SHEARBRIDGE_PROFILE or 'paper')")


def add_threads(p: ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        help="restrict the process to this many free CPU cores (default: all)",
    )


def add_noise(p: ArgumentParser, help: str = "pixel noise sigma (image units)") -> None:
    p.add_argument("--noise", required=True, type=float, help=help)


def add_experiment(p: ArgumentParser) -> None:
    """``--config`` (a named experiment or an override file), ``--noise`` and ``--profile``."""
    p.add_argument(
        "--config", required=True, help="experiment name, or a .json/.toml override file"
    )
    add_noise(p)
    add_profile(p)


def method_choices(*studies: str | None) -> str:
    """Help text: the registry's methods of ``studies`` (:mod:`shearbridge.study`)."""
    from shearbridge import study

    names: list[str] = []
    for st in filter(None, studies):
        names += [n for n in study.names(st, available_only=False) if n not in names]
    return "a registered method: " + ", ".join(names)


def add_method(p: ArgumentParser, *studies: str) -> None:
    p.add_argument("--method", required=True, help=method_choices(*studies))


def method_at_noise(*studies: str) -> Callable[[ArgumentParser], None]:
    """``add_arguments`` of a command that runs one registered method (of ``studies``) at one
    noise level: ``--method``, ``--noise``, ``--profile``."""

    def add(p: ArgumentParser) -> None:
        add_method(p, *studies)
        add_noise(p)
        add_profile(p)

    return add


def profile_of(args: Namespace) -> Profile:
    """``--profile``, else ``$SHEARBRIDGE_PROFILE``, else ``paper``."""
    return get_profile(args.profile, source="--profile") if args.profile else active_profile()


def experiment_of(args: Namespace) -> Any:
    """The experiment of ``--config`` at ``--noise`` for the profile."""
    from shearbridge.config.experiments import resolve_experiment

    return resolve_experiment(args.config, profile_of(args), args.noise)


def print_json(obj: Any, indent: int | None = 2) -> None:
    print(json.dumps(obj, indent=indent, sort_keys=indent is not None, default=str))

"""Command line: ``python -m shearbridge COMMAND`` (``--help`` lists them; ``list``: what is built).

Assembled from the steps: each module of :data:`STEPS` (under :mod:`shearbridge.steps`) declares
its commands next to its code (``COMMANDS``: :class:`shearbridge.steps.command.Command`, a name, a
help line, its arguments and its run); this module builds the parser from them and dispatches.
``--profile NAME`` overrides ``$SHEARBRIDGE_PROFILE`` for this call.

Errors the package reports itself (:class:`shearbridge.errors.ShearbridgeError`: a malformed
config, bad input, a missing file) print one line ``error: ...`` on stderr and exit with status 2;
anything else is a bug and raises with its traceback. Ctrl-C prints one line and exits with 130.
Output into a pipe that closed early (``python -m shearbridge list | head``) ends quietly with
status 141, as a process that SIGPIPE ended.

The commands with ``fast_env`` (``train``, ``timing``, ``population``), run as ``python -m
shearbridge``, restart themselves once with the fast-training process environment of
:func:`shearbridge.train.runtime.reexec_with_recommended_env` (huge-page malloc, XLA flags) unless
it is already set; ``--threads N`` then restricts the process to N free CPU cores
(:func:`shearbridge.train.parallel.claim_cores`).

Examples::

    python -m shearbridge simulate --dataset train --profile quick --workers 2
    python -m shearbridge train --config baseline --noise 1e-5 --profile quick
    python -m shearbridge evaluate --config baseline --noise 1e-5 --profile quick
    python -m shearbridge summarize baseline --profile quick
    python -m shearbridge train --config my_override.toml --noise 1e-3
    python -m shearbridge train --config baseline --noise 1e-3 --threads 1
    python -m shearbridge train --config baseline --noise 1e-3 --coordinator host0:4321 \\
        --num-processes 2 --process-id 0
    python -m shearbridge timing --networks baseline --profile quick
    python -m shearbridge floor --profile quick && python -m shearbridge summarize floor
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from shearbridge.errors import ShearbridgeError
from shearbridge.steps.command import Command

__all__ = ["STEPS", "step_modules", "commands", "build_parser", "main"]

#: The step modules (under ``shearbridge.steps``) whose ``COMMANDS`` make the command line, in the
#: order ``--help`` lists them: the pipeline's order, then the user's commands. A new step module
#: that declares ``COMMANDS`` joins after them without an entry here (:func:`step_modules`).
STEPS = (
    "simulate",
    "train",
    "evaluate",
    "crlb",
    "compare",
    "bias",
    "metacal",
    "yardstick",
    "robustness",
    "learning",
    "timing",
    "diagnose",
    "population_cmd",
    "converge",
    "survey",
    "tune",
    "tune_anacal",
    "floor",
    "summarize",
    "info",
    "catalogue",
)

DESCRIPTION = (
    "ShearBridge: simulate galaxies, train networks, measure shear with every method "
    "and write the paper's results. Each command runs one pipeline step; "
    "'shearbridge list' shows what exists and what is built."
)


def step_modules() -> list[str]:
    """:data:`STEPS`, then every other module of ``shearbridge/steps/`` that declares
    ``COMMANDS`` at its top level (read from its source: nothing else is imported)."""
    import re
    from pathlib import Path

    here = Path(__file__).parent / "steps"
    others = sorted(
        p.stem
        for p in here.glob("*.py")
        if p.stem not in STEPS and re.search(r"^COMMANDS\b", p.read_text(), re.M)
    )
    return [*STEPS, *others]


def commands() -> dict[str, Command]:
    """Every command of the :func:`step_modules`, by name (a name declared twice is a bug)."""
    found: dict[str, Command] = {}
    for module in step_modules():
        for cmd in importlib.import_module(f"shearbridge.steps.{module}").COMMANDS:
            if cmd.name in found:
                raise RuntimeError(f"command {cmd.name!r} is declared twice (steps.{module})")
            found[cmd.name] = cmd
    return found


def build_parser(cmds: dict[str, Command] | None = None) -> argparse.ArgumentParser:
    """The parser of ``cmds`` (default: :func:`commands`), one subcommand each."""
    parser = argparse.ArgumentParser(prog="shearbridge", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in (commands() if cmds is None else cmds).values():
        p = sub.add_parser(
            cmd.name,
            help=cmd.help,
            description=cmd.description or cmd.help,
            formatter_class=argparse.RawDescriptionHelpFormatter
            if cmd.description
            else argparse.HelpFormatter,
        )  # as written, or wrapped
        cmd.add_arguments(p)
    return parser


def _process_setup(args: argparse.Namespace) -> None:
    """Fast-training environment (re-exec) and CPU cores, for the commands that train."""
    from shearbridge.train.runtime import reexec_with_recommended_env

    reexec_with_recommended_env()  # returns at once when already set (or after the restart)
    if getattr(args, "threads", None) is not None:
        from shearbridge.train.parallel import claim_cores

        claim_cores(args.threads)


def _run(argv: Sequence[str] | None) -> int:
    cmds = commands()
    args = build_parser(cmds).parse_args(argv)
    cmd = cmds[args.command]
    try:
        if argv is None and cmd.fast_env:  # a process entry point only
            _process_setup(args)
        cmd.run(args)
    except ShearbridgeError as exc:  # misuse the package reports itself; anything else is a bug
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outputs are written atomically: nothing half-written is left
        print(
            f"interrupted: {args.command} stopped (finished outputs are kept; rerun to continue)",
            file=sys.stderr,
        )
        return 130
    return 0


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for a closed pipe goes nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a captured stream)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0; 2 on a usage or input error; 130 on
    Ctrl-C; 141 when the reader of the output left early)."""
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
    except BrokenPipeError:  # `shearbridge list | head`: the reader has all it wanted
        _quiet_stdout()
        return 141

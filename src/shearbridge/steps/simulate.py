"""Pipeline step: simulate one dataset of the profile (:mod:`shearbridge.sim.datasets`).

``python -m shearbridge simulate --dataset train --profile quick --workers 2`` renders the
profile's ``train`` set into ``src/data/<profile>/datasets/train/`` (skipped when an up-to-date
copy exists) and prints its folder.
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace

from shearbridge.steps.command import Command, add_profile, profile_of

__all__ = ["COMMANDS"]


def _arguments(p: ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset name, e.g. train, test, shear")
    add_profile(p)
    p.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--force", action="store_true", help="regenerate even if an up-to-date copy exists"
    )


def _simulate(args: Namespace) -> None:
    from shearbridge.sim.datasets import generate_dataset

    print(
        generate_dataset(
            args.dataset,
            profile=profile_of(args),
            workers=args.workers,
            progress=not args.no_progress,
            force=args.force,
        )
    )


COMMANDS = (Command("simulate", "generate one dataset of the profile", _arguments, _simulate),)

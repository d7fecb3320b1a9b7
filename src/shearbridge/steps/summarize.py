"""Pipeline step: write one figure summary (:mod:`shearbridge.summaries.collect`).

``python -m shearbridge summarize NAME --profile P`` writes ``src/data/summary/NAME.json`` (and
``.npz``) from the profile's results; the names: :data:`shearbridge.summaries.collect.SUMMARIES`.
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace

from shearbridge.steps.command import Command, add_profile, profile_of

__all__ = ["COMMANDS"]


def _arguments(p: ArgumentParser) -> None:
    p.add_argument("what", help="summary name, e.g. stamps, translation, baseline, floor")
    add_profile(p)


def _summarize(args: Namespace) -> None:
    from shearbridge.summaries.collect import write_summary

    write_summary(args.what, profile_of(args))


COMMANDS = (
    Command(
        "summarize", "write one figure summary under src/data/summary/", _arguments, _summarize
    ),
)

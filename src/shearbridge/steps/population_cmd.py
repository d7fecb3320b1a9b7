"""The population study's command: ``python -m shearbridge population sets|train|evaluate``.

The steps themselves are :mod:`shearbridge.steps.population` (at the 400-line limit, with JAX and
GalSim at import); this module declares their command and imports them when it runs, so that the
command line starts fast. ``train`` restarts itself in the fast-training environment (``fast_env``)
and takes ``--threads``.
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace

from shearbridge.steps.command import Command, add_profile, add_threads, print_json, profile_of

__all__ = ["COMMANDS"]


def _arguments(p: ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=("sets", "train", "evaluate"),
        help="sets (render and bound the cells), train (every seed) or evaluate (the cell table)",
    )
    add_profile(p)
    add_threads(p)


def _population(args: Namespace) -> None:
    from shearbridge.steps import population as pop

    step = {
        "sets": pop.prepare_sets,
        "train": pop.train_population,
        "evaluate": pop.evaluate_population,
    }
    out = step[args.action](profile_of(args))
    brief = {k: v for k, v in out.items() if not isinstance(v, (dict, list))}
    brief.update(
        {
            f"{k}_train_seconds": {n: round(h["train_seconds"], 1) for n, h in out[k].items()}
            for k in ("seeds", "ablations")
            if isinstance(out.get(k), dict)
        }
    )
    print_json(brief, indent=None)


COMMANDS = (
    Command(
        "population",
        "the population study: its test sets, PSFNet on fresh noise, its cell table",
        _arguments,
        _population,
        fast_env=True,
    ),
)

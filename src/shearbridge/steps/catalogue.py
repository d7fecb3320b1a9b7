"""The user's command: ``python -m shearbridge measure``, any registered method on your own stamps.

Three calls of :mod:`shearbridge.api`: read the stamps and the PSF (``load_stamps``), measure
them with the method's estimator at the stamps' noise level (``estimator``), write the catalogue
(``write_catalogue``: columns named for what they hold, :data:`shearbridge.api.CATALOGUE_COLUMNS`).
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from pathlib import Path

from shearbridge.steps.command import Command, add_profile, print_json, profile_of

__all__ = ["COMMANDS"]

_HELP = (
    "measure your own stamps with any registered method: a catalogue of g1, g2 (or e1, e2, R1, R2)"
)


def _arguments(p: ArgumentParser) -> None:
    p.add_argument(
        "--method",
        required=True,
        help="a method of 'shearbridge list' (networks: the profile's weights trained at --noise)",
    )
    p.add_argument(
        "--stamps", required=True, type=Path, help=".npy of shape (N, S, S) or (S, S), image units"
    )
    p.add_argument(
        "--psf", required=True, type=Path, help=".npy (S, S): the PSF drawn like the stamps"
    )
    p.add_argument(
        "--noise", required=True, type=float, help="pixel noise sigma of the stamps (image units)"
    )
    p.add_argument(
        "--pixel-scale",
        type=float,
        help="arcsec per pixel (default: the profile's simulation, 0.141)",
    )
    p.add_argument("--out", required=True, type=Path, help="catalogue to write: .csv or .npz")
    add_profile(p)


def _measure(args: Namespace) -> None:
    from shearbridge.api import catalogue_kind, estimator, load_stamps, write_catalogue
    from shearbridge.config import SimConfig

    stamps = load_stamps(args.stamps, "stamps", (2, 3))
    psf = load_stamps(args.psf, "PSF", (2,))
    scale = args.pixel_scale if args.pixel_scale is not None else SimConfig().pixel_scale_arcsec
    est = estimator(args.method, args.noise, profile=profile_of(args))
    result = est.measure(stamps, psf, scale, args.noise)
    path = write_catalogue(args.out, result)
    print_json(
        {
            "catalogue": str(path),
            "n": len(result),
            "n_flagged": int((result.flags != 0).sum()),
            "measures": catalogue_kind(result),
        },
        indent=None,
    )


def _description() -> str:
    from shearbridge.api import CATALOGUE_COLUMNS

    return _HELP + ".\n\n" + CATALOGUE_COLUMNS


COMMANDS = (Command("measure", _HELP, _arguments, _measure, description=_description()),)

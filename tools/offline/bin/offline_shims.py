"""Pure functions behind the offline shims (unit-tested in tests/test_offline_shims.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

FALLBACK_TEX_DIR = Path(__file__).resolve().parent.parent / "tex"


def strip_conda_flags(args: list[str]) -> list[str]:
    """Remove ``--use-conda`` and ``--conda-frontend X`` (or ``=X``) from snakemake args."""
    out: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        if arg == "--use-conda" or arg.startswith("--conda-frontend="):
            continue
        if arg == "--conda-frontend":
            skip_next = True
            continue
        out.append(arg)
    return out


def patch_asyncio() -> None:
    """Give Python >= 3.11 back ``asyncio.coroutine`` (used by ``ratelimiter``)."""
    if not hasattr(asyncio, "coroutine"):
        asyncio.coroutine = lambda f: f  # type: ignore[attr-defined]


def tectonic_command(args: list[str]) -> list[str]:
    """The pdflatex/latexmk command that stands in for ``tectonic ARGS``.

    Recognised tectonic flags: ``--chatter X``, ``--keep-logs``,
    ``--keep-intermediates``, ``-r N`` / ``--reruns N``, ``--synctex``,
    ``--outdir X`` (``-o X``); the last positional argument is the .tex file.
    Unknown flags raise ValueError (so a showyourwork change is noticed).
    """
    reruns: int | None = None
    synctex = False
    outdir: str | None = None
    inputs: list[str] = []
    it = iter(args)
    for arg in it:
        if arg in ("--chatter", "-c"):
            next(it, None)
        elif arg in ("--keep-logs", "--keep-intermediates", "-k"):
            continue
        elif arg in ("-r", "--reruns"):
            value = next(it, None)
            if value is None or not value.isdigit():
                raise ValueError(f"tectonic shim: {arg} needs an integer, got {value!r}")
            reruns = int(value)
        elif arg == "--synctex":
            synctex = True
        elif arg in ("--outdir", "-o"):
            outdir = next(it, None)
        elif arg.startswith("-"):
            raise ValueError(f"tectonic shim: unsupported flag {arg!r}")
        else:
            inputs.append(arg)
    if len(inputs) != 1:
        raise ValueError(f"tectonic shim: expected one .tex file, got {inputs}")
    common = ["-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    if outdir:
        common.append(f"-output-directory={outdir}")
    if reruns == 0:
        return ["pdflatex", *common, inputs[0]]
    cmd = ["latexmk", "-pdf", "-bibtex", *common]
    if synctex:
        cmd.append("-synctex=1")
    return [*cmd, inputs[0]]


def texinputs_with_fallback(texinputs: str | None) -> str:
    """TEXINPUTS with the fallback folder searched *after* the system tree.

    An empty component in a kpathsea path stands for the default (system) path,
    so ``.:<old>:`` followed by the fallback keeps every real package first.
    """
    parts = [p for p in (texinputs or "").split(os.pathsep) if p]
    return os.pathsep.join([".", *parts, "", str(FALLBACK_TEX_DIR)])

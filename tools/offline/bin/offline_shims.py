"""Pure functions behind the offline shims (unit-tested in tests/test_offline_shims.py).

Run as a script, ``python offline_shims.py install-asyncio-pth`` writes
:data:`ASYNCIO_PTH_NAME` into the running interpreter's site-packages (the Makefile's
install step does this for the project's virtual environment).
"""

from __future__ import annotations

import asyncio
import os
import sys
import sysconfig
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


# The same fix for every process of the virtual environment, the Snakemake processes of
# cluster job scripts (``python -m snakemake ...``, which never pass through the shim)
# included: site.py executes a .pth line that starts with ``import`` at interpreter start.
ASYNCIO_PTH_NAME = "shearbridge_asyncio_coroutine.pth"
ASYNCIO_PTH_LINE = (
    'import asyncio; hasattr(asyncio, "coroutine") or setattr(asyncio, "coroutine", lambda f: f)\n'
)


def install_asyncio_pth(site_packages: str | os.PathLike[str] | None = None) -> Path:
    """Write :data:`ASYNCIO_PTH_LINE` to ``<site-packages>/`` :data:`ASYNCIO_PTH_NAME`.

    Idempotent: one file with one line, rewritten only when its content differs. The
    default folder is the running interpreter's ``purelib`` (the venv's site-packages).
    """
    folder = Path(site_packages if site_packages is not None else sysconfig.get_paths()["purelib"])
    path = folder / ASYNCIO_PTH_NAME
    if not path.exists() or path.read_text() != ASYNCIO_PTH_LINE:
        path.write_text(ASYNCIO_PTH_LINE)
    return path


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


if __name__ == "__main__":
    if sys.argv[1:] != ["install-asyncio-pth"]:
        sys.exit(f"usage: {sys.argv[0]} install-asyncio-pth")
    print(f"installed {install_asyncio_pth()}")

r"""Numbers for the manuscript: formatted in Python, written as ``src/tex/output/<name>.txt``.

ms.tex reads them with ``\variable{output/<name>.txt}``; nothing numeric is typed
into the manuscript. Every metric is written with its uncertainty
(:func:`fmt_pm`), in LaTeX math mode.

Every number script ``src/scripts/num_*.py`` names what it writes once, in a module-level
``outputs(profile) -> list[str]`` (variable names, from the registry, the profile and its own
constants). The Snakefile reads that list with :func:`script_outputs` (the script is loaded, its
``main`` not run), and the script runs through :func:`run_numbers`, which fails when what
``main`` wrote is not exactly what ``outputs`` declares::

    if __name__ == "__main__":
        from shearbridge.paper.outputs import run_numbers

        run_numbers(main, outputs)
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable

from shearbridge import layout
from shearbridge.io import write_text

if TYPE_CHECKING:
    from shearbridge.config import Profile

__all__ = [
    "write_variable",
    "fmt_sci",
    "fmt_pm",
    "fmt_num",
    "fmt_int",
    "fmt_noise",
    "fmt_range",
    "fmt_list",
    "OUTPUT_DIR_RELATIVE",
    "OutputDeclarationError",
    "script_outputs",
    "declared_outputs",
    "check_outputs",
    "run_numbers",
]

#: ``src/tex/output``, relative to the repository root (where the Snakefile runs).
OUTPUT_DIR_RELATIVE = Path(os.path.relpath(layout.OUTPUT, layout.ROOT))

#: Every variable name :func:`write_variable` wrote in this process (:func:`run_numbers` checks it).
WRITTEN: set[str] = set()


def write_variable(name: str, text: str) -> None:
    """Write one ``\\variable`` file (no trailing newline, so it sits inside a sentence)."""
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"variable name must be alphanumeric with _ or -, got {name!r}")
    write_text(layout.OUTPUT / f"{name}.txt", text.strip() + "%\n")
    WRITTEN.add(name)


class OutputDeclarationError(RuntimeError):
    """A number script wrote a variable its ``outputs()`` does not declare, or declared one it did
    not write (a bug in the script: the declaration and ``main`` disagree)."""


@functools.lru_cache(maxsize=None)
def _load_script(path: Path) -> ModuleType:
    """The script at ``path`` as a module, loaded once, under a name other than ``__main__``."""
    spec = importlib.util.spec_from_file_location(f"shearbridge_numbers_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the number script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _valid(name: object) -> bool:
    return isinstance(name, str) and name.replace("_", "").replace("-", "").isalnum()


def declared_outputs(
    outputs: Callable[["Profile"], list[str]], profile: "Profile", where: str
) -> list[str]:
    """``outputs(profile)``, checked: valid variable names, none twice."""
    names = list(outputs(profile))
    bad = [n for n in names if not _valid(n)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if bad or twice:
        raise OutputDeclarationError(
            f"{where}: outputs() declares invalid variable names {bad} or names twice {twice}"
        )
    return names


def script_outputs(script: str | Path, profile: "Profile") -> list[str]:
    """The files ``src/tex/output/<name>.txt`` (relative to the repository root) that the number
    script ``script`` writes for ``profile``: its ``outputs(profile)``. The script is loaded as a
    module (once per path), its ``main`` not run: what a Snakefile rule's ``output:`` needs. A
    relative ``script`` absent from the working directory (``snakemake -d elsewhere``) is taken
    from the repository root."""
    path = Path(script)
    if not path.is_absolute() and not path.exists():
        path = layout.ROOT / path
    path = path.resolve()
    module = _load_script(path)
    if not callable(getattr(module, "outputs", None)):
        raise OutputDeclarationError(f"{script}: a number script must define outputs(profile)")
    names = declared_outputs(module.outputs, profile, str(script))
    return [str(OUTPUT_DIR_RELATIVE / f"{n}.txt") for n in names]


def check_outputs(declared: "list[str] | set[str]", written: "set[str]", where: str) -> None:
    """Raise :class:`OutputDeclarationError` naming every written but undeclared and every declared
    but unwritten variable."""
    undeclared = sorted(set(written) - set(declared))
    unwritten = sorted(set(declared) - set(written))
    if undeclared or unwritten:
        msg = [f"{where}: what main() wrote is not what outputs() declares"]
        if undeclared:
            msg.append(f"written but not declared: {', '.join(undeclared)}")
        if unwritten:
            msg.append(f"declared but not written: {', '.join(unwritten)}")
        raise OutputDeclarationError("; ".join(msg))


def run_numbers(
    main: Callable[[], object],
    outputs: Callable[["Profile"], list[str]],
    profile: "Profile | None" = None,
) -> None:
    """Run a number script's ``main`` (as :func:`shearbridge.paper.script.run_script` does: a
    package error is one line and exit status 2), then check that the variables it wrote are
    exactly ``outputs(profile)`` (default profile: the active one)."""
    from shearbridge.config import active_profile
    from shearbridge.paper.script import run_script

    code = getattr(main, "__code__", None)
    where = Path(code.co_filename).name if code is not None else "number script"
    declared = declared_outputs(outputs, profile or active_profile(), where)
    WRITTEN.clear()
    run_script(main)
    check_outputs(declared, WRITTEN, where)


def _mantissa_exponent(x: float, digits: int) -> tuple[str, int]:
    if x == 0 or not math.isfinite(x):
        return (f"{x:.{digits - 1}f}", 0)
    exp = int(math.floor(math.log10(abs(x))))
    mant = round(x / 10**exp, digits - 1)
    if abs(mant) >= 10:  # rounding carried over, e.g. 9.96 -> 10.0
        exp += 1
        mant = round(x / 10**exp, digits - 1)
    return (f"{mant:.{digits - 1}f}", exp)


def fmt_sci(x: float, digits: int = 2, math_mode: bool = True) -> str:
    r"""``3.1\times10^{-5}`` (plain decimal when 1e-2 <= |x| < 1e4)."""
    if x != 0 and math.isfinite(x) and not 1e-2 <= abs(x) < 1e4:
        mant, exp = _mantissa_exponent(x, digits)
        body = f"{mant}\\times10^{{{exp}}}"
    else:
        body = fmt_num(x, digits)
    return (
        f"${{{body}}}$" if math_mode else body
    )  # braced: TeX does not break a number across lines


def fmt_num(x: float, digits: int = 2) -> str:
    """``x`` with ``digits`` significant figures in plain decimal notation."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{decimals}f}"


def fmt_int(n: int) -> str:
    """An integer in math mode with thousands separators LaTeX spaces correctly: ``$32{,}768$``."""
    return f"${int(n):,}$".replace(",", "{,}")


def fmt_pm(value: float, err: float, err_digits: int = 1) -> str:
    r"""``value \pm err`` rounded at the error's last significant digit, math mode.

    A common power of ten is factored out when |value| is small or large:
    ``(3.1\pm0.2)\times10^{-5}``.
    """
    if not (math.isfinite(value) and math.isfinite(err)) or err < 0:
        raise ValueError(f"fmt_pm needs finite value and non-negative error, got {value}, {err}")
    ref = max(abs(value), err)
    exp = int(math.floor(math.log10(ref))) if ref > 0 else 0
    scale_exp = exp if not -2 <= exp < 4 else 0
    v, e = value / 10**scale_exp, err / 10**scale_exp
    if e > 0:
        decimals = max(0, err_digits - 1 - int(math.floor(math.log10(e))))
    else:
        decimals = 2
    shown = f"{v:.{decimals}f}"
    if float(shown) == 0.0:  # a value that rounds to zero has no sign: "0", never "-0"
        shown = f"{0.0:.{decimals}f}"
    body = f"{shown}\\pm{e:.{decimals}f}"
    if scale_exp:
        body = f"({body})\\times10^{{{scale_exp}}}"
    return f"${{{body}}}$"  # braced: TeX does not break a value and its error across lines


def fmt_noise(sigma: float) -> str:
    """A pixel-noise level: ``$10^{-5}$`` for a power of ten, else :func:`fmt_sci` (2 digits)."""
    exp = math.log10(sigma)
    return f"$10^{{{round(exp)}}}$" if abs(exp - round(exp)) < 1e-9 else fmt_sci(sigma, 2)


def fmt_list(items: "list[str]") -> str:
    """Items as running text: ``a``, ``a and b``, ``a, b and c`` ("none" for no items)."""
    if not items:
        return "none"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def fmt_range(values: "list[tuple[float, float | None]]", digits: int = 2) -> str:
    r"""The lowest and highest of ``(value, error)`` pairs, "``a`` to ``b``", each with its error
    (:func:`fmt_pm`; a value without one: :func:`fmt_num` to ``digits``); one value alone; "none"
    for an empty list."""
    if not values:
        return "none"
    lo, hi = min(values, key=lambda v: v[0]), max(values, key=lambda v: v[0])

    def one(v: "tuple[float, float | None]") -> str:
        return fmt_pm(v[0], v[1]) if v[1] is not None else f"${fmt_num(v[0], digits)}$"

    return one(lo) if lo is hi or lo == hi else f"{one(lo)} to {one(hi)}"

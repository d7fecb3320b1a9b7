"""How a figure or number script runs on its own: errors as one line, not a traceback.

Every ``src/scripts/fig_*.py`` ends with::

    if __name__ == "__main__":
        from shearbridge.paper.script import run_script

        run_script(main)

and every ``num_*.py`` with ``run_numbers(main, outputs)`` (:mod:`shearbridge.paper.outputs`),
which runs its ``main`` through :func:`run_script` and then checks its declared outputs. So a
misuse the package reports itself (:class:`shearbridge.errors.ShearbridgeError`: a missing
summary, another profile's summary, each naming the command that fixes it) prints one line
``error: ...`` on stderr and exits with status 2, as the command line does; anything else is a
bug and raises with its traceback.
"""

from __future__ import annotations

import sys
from typing import Callable

from shearbridge.errors import ShearbridgeError

__all__ = ["run_script"]


def run_script(main: Callable[[], object]) -> None:
    """Call ``main()``; on a :class:`ShearbridgeError` print ``error: ...`` and exit with 2."""
    try:
        main()
    except ShearbridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

"""The paper's house style: one matplotlibrc, column-width sizes, grey-safe cycles.

Figure scripts call :func:`use_style` first and size figures with
:data:`COLUMN_WIDTH_IN` / :data:`PAGE_WIDTH_IN` (AASTeX twocolumn), then
:func:`save` writes ``src/tex/figures/<name>.pdf`` atomically.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from . import paths  # noqa: E402
from .io import atomic_path  # noqa: E402

COLUMN_WIDTH_IN = 3.35
PAGE_WIDTH_IN = 7.1

# Okabe & Ito (2008) colours, paired with distinct dashes and markers so that
# every series is still distinguishable in greyscale.
COLORS = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 1)), (0, (6, 2)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def use_style() -> None:
    """Apply the committed ``src/scripts/matplotlibrc``."""
    plt.style.use(str(paths.MATPLOTLIBRC))


def series_styles() -> Iterator[dict[str, object]]:
    """Endless (color, linestyle, marker) keyword dicts, one per series."""
    for c, ls, m in itertools.cycle(zip(COLORS, LINESTYLES, MARKERS)):
        yield {"color": c, "linestyle": ls, "marker": m}


#: Every method keeps one style (colour, dashes, marker) and one label in every figure.
METHOD_ORDER = ("baseline", "hsm_ksb", "hsm_regauss", "mlfit", "shapenet", "shapenet_mix", "ngmix")
METHOD_LABELS = {"baseline": "EnhancedGalaxyNN", "shapenet": "ShapeNet", "shapenet_mix": "ShapeNet (mixture)",
                 "mlfit": "ML fit (JAX)", "hsm_regauss": "HSM REGAUSS", "hsm_ksb": "HSM KSB",
                 "ngmix": "ngmix ML fit"}


def method_style(method: str) -> dict[str, object]:
    """The fixed (color, linestyle, marker) of ``method`` (``<net>_cal``: its network's)."""
    base = method.removesuffix("_cal")
    i = METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER)
    return {"color": COLORS[i % len(COLORS)], "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "marker": MARKERS[i % len(MARKERS)]}


def method_label(method: str) -> str:
    """A method's label in figures (``<net>_cal``: ``'<label>, calibrated'``)."""
    base = method.removesuffix("_cal")
    label = METHOD_LABELS.get(base, base)
    return f"{label}, calibrated" if method.endswith("_cal") else label


def figure_path(name: str) -> Path:
    return paths.FIGURES / f"{name}.pdf"


def save(fig: plt.Figure, name: str) -> Path:
    """Save ``fig`` as ``src/tex/figures/<name>.pdf`` atomically and close it."""
    path = figure_path(name)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="pdf")
    plt.close(fig)
    return path

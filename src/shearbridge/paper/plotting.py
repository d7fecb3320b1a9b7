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

from shearbridge import study  # noqa: E402
from shearbridge import layout
from shearbridge.io import atomic_path  # noqa: E402

COLUMN_WIDTH_IN = 3.35
PAGE_WIDTH_IN = 7.1

# Okabe & Ito (2008) colours, paired with distinct dashes and markers so that
# every series is still distinguishable in greyscale.
# The last entry is the style -1 (seed and ablation variants) falls back to.
COLORS = (
    "#000000",
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#D55E00",
    "#0072B2",
    "#CC79A7",
    "#882255",
    "#999999",
    "#44AA99",
    "#332288",
    "#AA4499",
    "#F0E442",
)
LINESTYLES = (
    "-",
    "--",
    "-.",
    ":",
    (0, (5, 1, 1, 1)),
    (0, (3, 1, 1, 1, 1, 1)),
    (0, (1, 1)),
    (0, (6, 2)),
    (0, (4, 2, 1, 2)),
    (0, (8, 2, 2, 2)),
    (0, (1, 2)),
    (0, (7, 1, 1, 1, 1, 1)),
    (0, (2, 2)),
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "p", "<", ">", "d", "h")


def use_style() -> None:
    """Apply the committed ``src/scripts/matplotlibrc``."""
    plt.style.use(str(layout.MATPLOTLIBRC))


def series_styles() -> Iterator[dict[str, object]]:
    """Endless (color, linestyle, marker) keyword dicts, one per series."""
    for c, ls, m in itertools.cycle(zip(COLORS, LINESTYLES, MARKERS)):
        yield {"color": c, "linestyle": ls, "marker": m}


def method_style(method: str) -> dict[str, object]:
    """The fixed (color, linestyle, marker) of a registered method in every figure
    (:attr:`shearbridge.study.Method.style`; a calibrated network shares its network's)."""
    i = study.get_method(method).style or 0
    i = i if i >= 0 else len(COLORS) - 1
    return {
        "color": COLORS[i % len(COLORS)],
        "linestyle": LINESTYLES[i % len(LINESTYLES)],
        "marker": MARKERS[i % len(MARKERS)],
    }


def method_label(method: str) -> str:
    """A registered method's label in figures and tables
    (:attr:`shearbridge.study.Method.label`)."""
    return study.get_method(method).label


def figure_path(name: str) -> Path:
    return layout.FIGURES / f"{name}.pdf"


def save(fig: plt.Figure, name: str) -> Path:
    """Save ``fig`` as ``src/tex/figures/<name>.pdf`` atomically and close it."""
    path = figure_path(name)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="pdf")
    plt.close(fig)
    return path


def snr_label(x: float) -> str:
    """A matched-filter S/N for figure labels, to two significant figures as the tables print it
    (``2300``, ``$2.3\\times10^{4}$``)."""
    from shearbridge.paper.outputs import fmt_sci

    return fmt_sci(float(f"{x:.2g}"))

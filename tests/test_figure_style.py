"""Figures read at print size: no font below MIN_PT once a figure is placed in the paper.

Static and fast (no data, nothing drawn). A figure is drawn ``figsize`` wide and placed
``\\linewidth`` wide by ms.tex (3.35 in in a ``figure``, 7.1 in in a ``figure*``), so its
fonts print at ``size x placed / drawn``. A figure drawn 7.1 in wide in a one-column
``figure`` prints at 47 % of its font sizes (referee, issue 15: 7 pt became 3.3 pt). So:

* every font size of the house style (``src/scripts/matplotlibrc``, applied by
  :func:`shearbridge.paper.plotting.use_style`) is at least ``MIN_PT``;
* every figure script draws at most the page width, read from its ``figsize=``;
* the smallest font of each figure script -- the style's, or an explicit ``fontsize=``,
  ``labelsize=``, ``title_fontsize=``, text ``size=`` or legend ``prop`` literal (found in
  the script's syntax tree) -- times the scale ms.tex places it at is at least ``MIN_PT``.

``KNOWN_SMALL`` holds the scripts that still print smaller, at the size they print now:
they may not get worse; once one is fixed the test warns until its entry is deleted.
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "src" / "scripts"
RC = SCRIPTS / "matplotlibrc"
MS = ROOT / "src" / "tex" / "ms.tex"
PLOTTING = ROOT / "src" / "shearbridge" / "paper" / "plotting.py"

MIN_PT = 7.0
COLUMN_WIDTH_IN, PAGE_WIDTH_IN = 3.35, 7.1  # AASTeX twocolumn; checked against plotting.py below
FONT_KEYS = (
    "font.size",
    "axes.labelsize",
    "axes.titlesize",
    "xtick.labelsize",
    "ytick.labelsize",
    "legend.fontsize",
    "legend.title_fontsize",
    "figure.titlesize",
    "figure.labelsize",
)
# keywords that are a font size wherever they appear; ``size`` only in the calls below
FONT_KWARGS = {"fontsize", "labelsize", "title_fontsize"}
TEXT_CALLS = {
    "text",
    "annotate",
    "set_title",
    "set_xlabel",
    "set_ylabel",
    "suptitle",
    "supxlabel",
    "supylabel",
    "set_xticks",
    "set_yticks",
    "set_xticklabels",
    "set_yticklabels",
    "legend",
    "tick_params",
    "FontProperties",
    "figtext",
    "label_outer",
    "set_label_text",
}

# Smallest font at print size (pt) of the scripts not yet fixed (issue 15); page in the
# build of ac6c692. Fix the script, then delete its line.
KNOWN_SMALL: dict[str, float] = {}


def points(value: object, base: float) -> float | None:
    """A matplotlib font size in points (``base``: font.size, for 'small', 'larger', ...)."""
    from matplotlib.font_manager import font_scalings

    if value is None:
        return None  # inherits another size (legend.title_fontsize)
    if isinstance(value, str) and value in font_scalings:
        return base * font_scalings[value]
    return float(value)


def style_sizes(rc_file: Path = RC) -> dict[str, float]:
    """Font sizes in points of the house style, as matplotlib applies the file."""
    import matplotlib

    rc = matplotlib.rc_params_from_file(str(rc_file), use_default_template=True)
    base = float(rc["font.size"])
    return {k: p for k in FONT_KEYS if (p := points(rc[k], base)) is not None}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            yield (
                node,
                f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else "",
            )


def font_literals(source: str, base: float) -> list[tuple[int, str, float]]:
    """(line, keyword, points) of every literal font size passed in ``source``."""
    out = []

    def add(line: int, key: str, node: ast.AST) -> None:
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float, str))
            and not isinstance(node.value, bool)
        ):
            pt = points(node.value, base)
            if pt is not None:
                out.append((line, key, pt))

    for call, name in _calls(ast.parse(source)):
        for kw in call.keywords:
            if kw.arg in FONT_KWARGS or (kw.arg == "size" and name in TEXT_CALLS):
                add(kw.value.lineno, kw.arg, kw.value)
            elif kw.arg == "prop":  # legend(prop={"size": 6}) / prop=dict(size=6)
                v = kw.value
                if isinstance(v, ast.Dict):
                    for k, val in zip(v.keys, v.values):
                        if isinstance(k, ast.Constant) and k.value == "size":
                            add(val.lineno, "prop size", val)
                elif isinstance(v, ast.Call):
                    for k in v.keywords:
                        if k.arg == "size":
                            add(k.value.lineno, "prop size", k.value)
    return out


def _widths(node: ast.AST, tree: ast.Module) -> set[float]:
    """The values a figure-width expression can take: numbers, plotting.*_WIDTH_IN, a
    conditional of those, or a name assigned one of those in the script."""
    consts = {"COLUMN_WIDTH_IN": COLUMN_WIDTH_IN, "PAGE_WIDTH_IN": PAGE_WIDTH_IN}
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return {float(node.value)}
    if isinstance(node, ast.Attribute) and node.attr in consts:
        return {consts[node.attr]}
    if isinstance(node, ast.IfExp):
        return _widths(node.body, tree) | _widths(node.orelse, tree)
    if isinstance(node, ast.Name):
        if node.id in consts:
            return {consts[node.id]}
        values = [
            a.value
            for a in ast.walk(tree)
            if isinstance(a, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == node.id for t in a.targets)
        ]
        if values:
            return set().union(*(_widths(v, tree) for v in values))
    raise ValueError(f"line {node.lineno}: cannot read a figure width from {ast.unparse(node)!r}")


def figure_widths(source: str) -> set[float]:
    """Every width a script's ``figsize=(w, h)`` can take (empty: the style's default)."""
    tree = ast.parse(source)
    out: set[float] = set()
    for call, _ in _calls(tree):
        for kw in call.keywords:
            if kw.arg == "figsize":
                if not isinstance(kw.value, (ast.Tuple, ast.List)):
                    raise ValueError(f"line {kw.value.lineno}: figsize is not a literal (w, h)")
                out |= _widths(kw.value.elts[0], tree)
    return out


def placements(tex: str) -> dict[str, float]:
    """Script name -> the width (in) ms.tex places its figure at."""
    tex = re.sub(r"(?<!\\)%.*", "", tex)
    out = {}
    for star, env in re.findall(r"\\begin\{figure(\*?)\}(.*?)\\end\{figure\*?\}", tex, re.S):
        line = PAGE_WIDTH_IN if star else COLUMN_WIDTH_IN
        script = re.search(r"\\script\{([^}]*)\}", env)
        for opts in re.findall(r"\\includegraphics(?:\[([^\]]*)\])?\{", env):
            w = re.search(r"width\s*=\s*([\d.]*)\s*\\(linewidth|columnwidth|textwidth|hsize)", opts)
            name = script and script.group(1)
            assert w, f"{name}: place figures by a fraction of \\linewidth, not {opts!r}"
            full = PAGE_WIDTH_IN if w.group(2) == "textwidth" else line
            if script:
                out[script.group(1)] = float(w.group(1) or 1) * full
    return out


def print_min(script: Path, tex: str, rc_file: Path = RC) -> float:
    """Smallest font size (pt) of ``script``'s figure as printed in the paper."""
    style = style_sizes(rc_file)
    source = script.read_text()
    sizes = [*style.values(), *(pt for _, _, pt in font_literals(source, style["font.size"]))]
    drawn = max(figure_widths(source) or {COLUMN_WIDTH_IN})
    placed = placements(tex).get(script.name, drawn)
    return min(sizes) * placed / drawn


FIG_SCRIPTS = sorted(SCRIPTS.glob("fig_*.py"))


def test_page_sizes_match_plotting():
    tree = ast.parse(PLOTTING.read_text())
    consts = {
        t.id: a.value.value
        for a in tree.body
        if isinstance(a, ast.Assign)
        for t in a.targets
        if isinstance(t, ast.Name) and isinstance(a.value, ast.Constant)
    }
    assert (consts["COLUMN_WIDTH_IN"], consts["PAGE_WIDTH_IN"]) == (COLUMN_WIDTH_IN, PAGE_WIDTH_IN)


def test_house_style_fonts_are_readable():
    small = {k: v for k, v in style_sizes().items() if v < MIN_PT}
    assert not small, f"src/scripts/matplotlibrc: font sizes below {MIN_PT} pt: {small}"
    rc = RC.read_text()
    assert re.search(r"^figure\.figsize:\s*3\.35\b", rc, re.M), (
        "the default figure is one column wide"
    )


def test_plotting_sets_no_rc_of_its_own():
    """The house style is the rc file alone: plotting.py overrides no rc parameter."""
    source = PLOTTING.read_text()
    assert not re.search(r"rcParams\s*(\[|\.update)|\brc\(", source), "plotting.py changes rcParams"
    assert not font_literals(source, style_sizes()["font.size"])


@pytest.mark.parametrize("script", FIG_SCRIPTS, ids=lambda p: p.name)
def test_figure_fits_the_page(script):
    widths = figure_widths(script.read_text())
    widest = max(widths, default=COLUMN_WIDTH_IN)
    assert widest <= PAGE_WIDTH_IN + 1e-9, (
        f"{script.name} is {widest} in wide, the page {PAGE_WIDTH_IN} in"
    )


@pytest.mark.parametrize("script", FIG_SCRIPTS, ids=lambda p: p.name)
def test_fonts_at_print_size(script):
    tex, source = MS.read_text(), script.read_text()
    got = print_min(script, tex)
    name = script.name
    if name in KNOWN_SMALL:
        assert got >= KNOWN_SMALL[name] - 1e-6, f"{name}: fonts got smaller ({got:.2f} pt)"
        if got >= MIN_PT:  # fixed (perhaps by a change in flight): the entry is stale, not wrong
            warnings.warn(
                f"{name} now prints at >= {MIN_PT} pt: delete it from KNOWN_SMALL", stacklevel=1
            )
    else:
        literals = font_literals(source, style_sizes()["font.size"])
        assert got >= MIN_PT - 1e-6, (
            f"{name} prints fonts at {got:.2f} pt (< {MIN_PT}): "
            f"placed {placements(tex).get(name)} in wide, "
            f"drawn {sorted(figure_widths(source))} in, "
            f"literal sizes (line, keyword, pt) {literals}"
        )


def test_known_small_scripts_exist():
    assert set(KNOWN_SMALL) <= {p.name for p in FIG_SCRIPTS}


def test_the_checks_catch_small_fonts_and_shrunk_figures(tmp_path):
    """The checks fail for the reasons they exist: a small literal, a small style, a shrink."""
    style = style_sizes()
    src = (
        "ax.text(0, 0, 's', fontsize=6)\n"
        "ax.legend(prop={'size': 5})\n"
        "ax.tick_params(labelsize='x-small')\n"
        "np.random.normal(size=3)\n"
        "fig, ax = plt.subplots(figsize=(plotting.PAGE_WIDTH_IN, 2))\n"
    )
    found = font_literals(src, style["font.size"])
    assert [(line, key) for line, key, _ in found] == [
        (1, "fontsize"),
        (2, "prop size"),
        (3, "labelsize"),
    ]
    assert min(pt for *_, pt in found) == 5
    script = tmp_path / "fig_x.py"
    script.write_text("fig = plt.figure(figsize=(plotting.PAGE_WIDTH_IN, 2))\n")
    one_column = (
        "\\begin{figure}\n\\script{fig_x.py}\n"
        "\\includegraphics[width=\\linewidth]{figures/fig_x.pdf}\n\\end{figure}"
    )
    smallest = min(style.values())
    assert print_min(script, one_column) == pytest.approx(
        smallest * COLUMN_WIDTH_IN / PAGE_WIDTH_IN
    )
    assert print_min(script, one_column.replace("{figure}", "{figure*}")) == pytest.approx(smallest)
    rc = tmp_path / "matplotlibrc"
    rc.write_text(RC.read_text().replace("legend.fontsize: 7", "legend.fontsize: x-small"))
    assert style_sizes(rc)["legend.fontsize"] < MIN_PT

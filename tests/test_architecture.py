"""The package's layers: every import (lazy ones inside functions included) runs down.

A unit is a top-level module or a subpackage of ``shearbridge``. Units of one layer never import
each other; a unit imports only units of lower layers. ``docs/architecture.md`` draws the same
table. A new module joins a layer here, or this test names it.
"""

from __future__ import annotations

import ast

from importgraph import PKG, imports, modules

#: Bottom up. The package face (``__init__``: ``__version__`` and the lazy ``estimator``) and the
#: process entry point stand on top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("version", "errors"),
    ("config",),
    ("io", "layout", "studies"),
    ("models", "method", "provenance"),
    ("sim",),
    ("estimators",),
    ("stats", "train", "methods_table"),
    ("study", "diagnosis"),
    ("runs", "results", "paper"),
    ("summaries", "api"),
    ("steps",),
    ("cli", "plan"),
    ("__init__", "__main__"),
)
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str:
    """``shearbridge.steps.bias`` -> ``steps``; the package face ``shearbridge`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, file) of every import between two units of the package."""
    mods = modules()
    return [
        (_unit(m), _unit(dep), str(p.relative_to(PKG)))
        for m, p in mods.items()
        for dep, _ in imports(m, p, mods)
        if _unit(dep) != _unit(m)
    ]


def test_every_unit_has_a_layer():
    units = {
        p.stem if p.is_file() else p.name
        for p in PKG.iterdir()
        if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
    }
    assert units - set(LAYER_OF) == set(), "give each new module or subpackage a layer (LAYERS)"
    assert set(LAYER_OF) - units == set(), "LAYERS names a unit that no longer exists"


def test_every_import_runs_down():
    """No import arrow runs back up (and so no cycle between units)."""
    upward = sorted(
        {
            f"{f}: {a} (layer {LAYER_OF[a]}) imports {b} (layer {LAYER_OF[b]})"
            for a, b, f in _imports()
            if LAYER_OF[b] >= LAYER_OF[a]
        }
    )
    assert upward == [], "imports that do not run down:\n" + "\n".join(upward)


def test_the_test_sees_imports_and_would_catch_an_upward_one(tmp_path):
    """The checker is not blind: the package's real arrows are found, and an upward one is named."""
    found = {(a, b) for a, b, _ in _imports()}
    assert (
        ("steps", "layout") in found and ("cli", "steps") in found and ("__init__", "api") in found
    )
    assert LAYER_OF["config"] < LAYER_OF["steps"], "config imports nothing above it"


#: The folders of a profile's data (and the summaries'): only ``layout.py`` joins them into paths.
DATA_FOLDERS = (
    "datasets",
    "runs",
    "results",
    "crlb",
    "diagnosis",
    "benchmarks",
    "population",
    "summary",
)


def _path_joins(text: str) -> list[str]:
    import re

    folders = "|".join(DATA_FOLDERS)
    # a join onto a folder, a path from an interpolated root, a noise<tag> file name, the data root
    pattern = rf'/ *f?"(?:{folders})"|\}}/(?:{folders})/|f"noise\{{|data_root\(\) */'
    return [m.group(0) for m in re.finditer(pattern, text)]


def test_only_the_layout_builds_data_paths():
    """Steps, summaries, scripts and the Snakefile ask :mod:`shearbridge.layout`; none joins a data
    folder or a ``noise<tag>`` file name itself (docstrings and messages may name them)."""
    root = PKG.parents[1]
    files = [p for p in PKG.rglob("*.py") if p.name != "layout.py"]
    files += sorted((root / "src" / "scripts").glob("*.py")) + [root / "Snakefile"]
    found = {}
    for path in files:
        tree_text = path.read_text()
        if path.suffix == ".py":  # code only: drop docstrings, comments and error messages
            tree = ast.parse(tree_text)
            for node in ast.walk(tree):
                if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                    node.value.value = ""
                if isinstance(node, ast.Raise):
                    node.exc, node.cause = None, None
            tree_text = ast.unparse(tree)
        hits = _path_joins(tree_text)
        if hits:
            found[str(path.relative_to(root))] = hits
    assert found == {}, f"data paths built outside shearbridge/layout.py: {found}"


def test_the_path_check_would_catch_a_join():
    assert _path_joins('run = profile_dir / "runs" / name') == ['/ "runs"']
    assert _path_joins('p = f"{D}/results/compare/{m}.json"') == ["}/results/"]
    assert _path_joins('help="writes src/data/summary/NAME.json"') == []
    assert _path_joins("Layout(profile).run(name, sigma)") == []

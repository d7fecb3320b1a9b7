"""Static checks of ms.tex and bib.bib (fast; the built PDF is checked in test_integration.py)."""

from __future__ import annotations

import re

import paperchecks as pc

TEX = pc.MS.read_text()
BIB = (pc.ROOT / "src" / "tex" / "bib.bib").read_text()


def test_no_numbers_typed_into_running_text():
    typed = pc.typed_numbers(TEX)
    assert typed == [], f"numbers typed into ms.tex instead of \\variable: {typed}"


def test_typed_number_check_catches_numbers():
    tex = r"\begin{document} the RMSE is 0.0090 and $3.1\times10^{-5}$ but $g_1$ and \variable{output/x.txt}"
    assert sorted(pc.typed_numbers(tex)) == sorted(["0.0090", "3.1", "10", "5"])


def test_every_citation_is_in_the_bibliography():
    keys = set(re.findall(r"@\w+\{([^,\s]+),", BIB))
    cited = set()
    for group in re.findall(r"\\cite[tp]?\*?(?:\[[^\]]*\])*\{([^}]*)\}", pc.strip_comments(TEX)):
        cited.update(k.strip() for k in group.split(","))
    assert cited, "no citations found"
    assert cited <= keys, f"undefined citations: {sorted(cited - keys)}"


def test_every_figure_has_a_script_and_a_label():
    figs = pc.figures(TEX)
    assert figs, "no figures in ms.tex"
    for script, inc in figs:
        assert script is not None, f"figure {inc} has no \\script"
        assert (pc.ROOT / "src" / "scripts" / script).exists(), f"missing script {script}"
        assert inc == f"figures/{script.removesuffix('.py')}.pdf", f"{script} should draw {inc}"
    labels = re.findall(r"\\label\{fig:([^}]*)\}", TEX)
    for script, _ in figs:
        assert script.removesuffix(".py").removeprefix("fig_") in labels


def test_every_variable_has_a_rule_in_the_snakefile():
    """Each \\variable is named in the Snakefile, literally or by an f-string output pattern."""
    snakefile = (pc.ROOT / "Snakefile").read_text()
    patterns = []
    for pat in re.findall(r'f"(?:\{OUT\}/)?([^"/]+?)(?:\.txt)?"', snakefile):
        literal = re.sub(r"\{[^}]*\}", "", pat)
        if len(literal) >= 3:  # e.g. baseline_rmse_{t}; a bare {name} relies on the literal list
            patterns.append(re.compile(re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(pat)) + "$"))
    for var in pc.variables(TEX):
        name = var.removeprefix("output/").removesuffix(".txt")
        stem = re.sub(r"_\d+e-\d+$", "", name)  # per-noise-level names: <stem>_<tag>
        literal = f'"{name}"' in snakefile or f'"{stem}"' in snakefile
        assert literal or any(p.match(name) for p in patterns), f"no Snakefile rule makes {var}"

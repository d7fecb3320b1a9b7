"""Static checks of ms.tex and bib.bib (fast; the built PDF is checked in test_integration.py)."""

from __future__ import annotations

import re
from pathlib import Path

import paperchecks as pc

TEX = pc.MS.read_text()
BIB = (pc.ROOT / "src" / "tex" / "bib.bib").read_text()


def test_no_numbers_typed_into_running_text():
    typed = pc.typed_numbers(TEX)
    assert typed == [], f"numbers typed into ms.tex instead of \\variable: {typed}"


def test_typed_number_check_catches_numbers():
    tex = (
        r"\begin{document} the RMSE is 0.0090 and $3.1\times10^{-5}$ but $g_1$ and "
        r"\variable{output/x.txt}"
    )
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
    """Each \\variable is declared by a number script (its outputs()), and the Snakefile has that
    script's rule (its NUMBERS table; tests/test_number_outputs.py checks the declarations)."""
    from shearbridge.config import get_profile
    from shearbridge.paper.outputs import script_outputs

    snakefile = (pc.ROOT / "Snakefile").read_text()
    declared = set()
    for script in sorted((pc.ROOT / "src/scripts").glob("num_*.py")):
        name = script.stem.removeprefix("num_")
        assert f'    "{name}": ' in snakefile, f"no Snakefile rule runs {script.name}"
        declared |= {Path(o).stem for o in script_outputs(script, get_profile("paper"))}
    for var in pc.variables(TEX):
        name = var.removeprefix("output/").removesuffix(".txt")
        assert name in declared, f"no Snakefile rule makes {var}"

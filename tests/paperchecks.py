"""Static checks of the manuscript, shared by test_manuscript.py and test_integration.py.

* :func:`figures` — (script, figure file) of every figure environment;
* :func:`variables` — every ``\\variable{...}`` path;
* :func:`latex_to_text` — what a simple LaTeX number looks like in ``pdftotext`` output;
* :func:`typed_numbers` — digits typed into running text instead of coming from ``\\variable``.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MS = ROOT / "src" / "tex" / "ms.tex"


def strip_comments(tex: str) -> str:
    return re.sub(r"(?<!\\)%.*", "", tex)


def figures(tex: str) -> list[tuple[str | None, str]]:
    """(script name or None, included file) for each figure/figure* environment."""
    out = []
    for env in re.findall(
        r"\\begin\{figure\*?\}(.*?)\\end\{figure\*?\}", strip_comments(tex), re.S
    ):
        script = re.search(r"\\script\{([^}]*)\}", env)
        for inc in re.findall(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}", env):
            out.append((script.group(1) if script else None, inc))
    return out


def variables(tex: str) -> list[str]:
    return re.findall(r"\\variable\{([^}]*)\}", strip_comments(tex))


def latex_to_text(s: str) -> str:
    """Approximate pdftotext's rendering of a short LaTeX snippet, whitespace removed."""
    s = s.strip().rstrip("%")
    multi = re.match(
        r"\\multicolumn\{\d+\}\{[^}]*\}\{", s
    )  # a table cell spanning columns: its content
    if multi and s.endswith("}"):
        s = s[multi.end() : -1]
    s = re.sub(r"\\resizebox\{[^}]*\}\{[^}]*\}\{%?", "", s)  # a table scaled to the text width
    s = s.replace("''", "′′")  # arcsec in math mode: two primes
    s = re.sub(r"\\(begin|end)\{[^}]*\}(\{[^}]*\})?", "", s)
    for a, b in (
        (r"\times", "×"),
        (r"\pm", "±"),
        (r"\,", ""),
        (r"\%", "%"),
        ("~", ""),
        (r"\le", "≤"),
        (r"\ge", "≥"),
        (r"\'e", "é"),
        ("--", "–"),
        (r"\sigma", "σ"),
        (r"\rho", "ρ"),
        (r"\gamma", "γ"),
        (r"\approx", "≈"),
    ):
        s = s.replace(a, b)
    s = re.sub(r"\\(texttt|textrm|mathrm|textbf|emph)\{([^}]*)\}", r"\2", s)
    s = re.sub(r"\\[a-zA-Z]+\*?", "", s)  # remaining commands
    s = s.replace("$", "").replace("{", "").replace("}", "").replace("^", "")
    s = (
        s.replace("−", "-").replace("\\", "").replace("_", "")
    )  # subscripts and \_ (texttt) vanish in pdftotext
    return re.sub(r"\s+", "", s)


def normalise_pdf_text(text: str) -> str:
    text = unicodedata.normalize(
        "NFC", text
    )  # pdftotext writes an accent as a combining mark: "Se\u0301rsic"
    text = (
        text.replace("−", "-")
        .replace("\u2009", "")
        .replace("◦", "")
        .replace("⋄", "")
        .replace("ﬁ", "fi")
        .replace("ﬀ", "ff")
        .replace("ﬂ", "fl")
    )
    text = re.sub(r"-\n", "", text)  # hyphenation at line ends
    return re.sub(r"\s+", "", text).replace("_", "")


# Typed numbers: allowed where they are not data (section names of the
# reproducibility appendix, e.g.), each with a reason.
ALLOWED_TOKENS = {
    "2025": "a year: names the ShearNet version whose setup is reproduced",
    "float32": "a type name",
    "float64": "a type name",
    **{f"{n}pt": "a table's column spacing (layout, not data)" for n in (3, 4)},
    **{
        f"{k}{i}": "a layer name of EnhancedGalaxyNN"
        for k in ("conv", "relu", "pool", "dense")
        for i in (1, 2, 3)
    },
}
# In inline math, 0 and 1 may stand as mathematical identities (|g| < 1, a slope of one).
ALLOWED_MATH = {"0", "1"}
_SKIP_ARGS = (
    r"\\(?:variable|ref|eqref|label|cite[tp]?|citep|citet|includegraphics|script|begin|end"
    r"|usepackage|documentclass|input|bibliography|url|href)\*?(?:\[[^\]]*\])?\{[^}]*\}"
)


def typed_numbers(tex: str) -> list[str]:
    """Digits in ms.tex outside \\variable and outside index-like math (g_1, x^2).

    Displayed equations (equation/align environments, \\[...\\]) may hold the
    constants of a formula; inline math may hold sub/superscript indices only.
    """
    body = strip_comments(tex)
    body = body.split(r"\begin{document}", 1)[-1]
    body = re.sub(
        r"\\begin\{(equation|align|eqnarray)\*?\}.*?\\end\{\1\*?\}", " ", body, flags=re.S
    )
    body = re.sub(r"\\\[.*?\\\]", " ", body, flags=re.S)
    body = re.sub(_SKIP_ARGS, " ", body)
    body = re.sub(r"\\[a-zA-Z]+", " ", body)  # command names such as \section
    found = []
    for math in re.findall(r"\$([^$]*)\$", body):
        stripped = re.sub(r"[_^]\{?[0-9a-zA-Z]\}?", " ", math)
        found += [t for t in re.findall(r"\d+(?:\.\d+)?", stripped) if t not in ALLOWED_MATH]
    text = re.sub(r"\$[^$]*\$", " ", body)
    for token in re.findall(r"[A-Za-z]*\d[\w.]*", text):
        if token not in ALLOWED_TOKENS:
            found.append(token)
    return found

"""End to end: build the paper with the quick profile in a scratch copy and check the PDF.

The copy holds exactly what git would (tracked files plus untracked, non-ignored
ones), so the build proves the repository's own files suffice; it uses the
running virtual environment and the system TeX Live that ``make`` installs.
"""

from __future__ import annotations

import re

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import build_timeout

import paperchecks as pc

pytestmark = pytest.mark.integration

ROOT = pc.ROOT


def _copy_worktree(dest: Path) -> None:
    listing = (
        subprocess.run(
            ["git", "ls-files", "-z", "-co", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listing):
        src = ROOT / rel
        if not os.path.lexists(src):
            continue  # deleted in the work tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        [
            "git",
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@localhost",
            "commit",
            "-qm",
            "snapshot",
        ],
    ):
        subprocess.run(cmd, cwd=dest, check=True)


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory):
    if shutil.which("pdflatex") is None or shutil.which("pdftotext") is None:
        pytest.fail("TeX Live / poppler missing: run `make test`, which installs them")
    work = tmp_path_factory.mktemp("build") / "repo"
    work.mkdir()
    _copy_worktree(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHEARBRIDGE_", "PYTEST"))}
    # Import the copy's shearbridge, not the editable install of this checkout.
    env["PYTHONPATH"] = str(work / "src")
    start = time.time()
    proc = subprocess.run(
        [
            "make",
            "build",
            "PROFILE=quick",
            f"VENV={sys.prefix}",
            f"CORES={min(os.cpu_count() or 2, 2)}",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=build_timeout(),
    )
    log = proc.stdout[-6000:] + proc.stderr[-6000:]
    assert proc.returncode == 0, f"quick build failed:\n{log}"
    return work, start


def _pdf_text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_pdf_exists_and_has_pages(quick_build):
    work, _ = quick_build
    pdf = work / "ms.pdf"
    assert pdf.exists()
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    assert pages >= 1


def test_pdf_states_the_quick_profile(quick_build):
    work, _ = quick_build
    assert (work / "src/tex/output/profile.txt").read_text().strip().startswith(r"\texttt{quick}")
    assert "quick" in _pdf_text(work / "ms.pdf")


def test_every_figure_was_produced_by_its_script_in_this_build(quick_build):
    work, start = quick_build
    figs = pc.figures((work / "src/tex/ms.tex").read_text())
    assert figs
    for script, inc in figs:
        path = work / "src/tex" / inc
        assert path.exists(), f"{inc} (from {script}) was not produced"
        assert path.stat().st_mtime >= start, f"{inc} is older than this build"
        assert (work / "src/scripts" / script).exists()


def _found(needle: str, text: str) -> bool:
    """In the text (line-end hyphens dropped); a long list may be split by a page break and
    floats, so a comma-separated list counts when every item is found."""
    if needle in text or needle.replace("-", "") in text:
        return True
    # pdftotext may move a superscript exponent to another line (two-column pages, scaled
    # tables): "(-1.9±0.8)×10-3 (2,966)" then reads "(-1.9±0.8)×10 (2,966)"; accept the value
    # with its exponents left out
    bare = re.sub(r"×10-?\d+", "×10", needle)
    if bare != needle and len(bare) >= 4 and bare in text:
        return True
    parts = [p for p in needle.split(",") if p]
    if len(parts) > 2 and all(p in text or p.replace("-", "") in text for p in parts):
        return True
    return _interrupted(needle, text) or _interrupted(needle.replace("-", ""), text)


def _interrupted(needle: str, text: str, gap: int = 15000) -> bool:
    """A value broken by a column end: pdftotext reads a float's text (a figure's labels, a table)
    in between, so the needle's head ends one place and its tail starts within ``gap`` characters
    after it. Both parts at least six characters long, so that neither is a stray digit. A hyphen
    at the break (``conda-forge``) ends a line, where the text has lost it. (Measured: the
    activation figure's labels and caption, 10,400 characters, between the two halves of
    ``ngmix_status`` in the quick build of 1f5c021.)"""
    for k in range(6, len(needle) - 5):
        tail = needle[k:]
        for head in {needle[:k], needle[:k].removesuffix("-")}:
            start = text.find(head)
            while start >= 0:
                end = start + len(head)
                if text.find(tail, end, end + gap + len(tail)) > end:
                    return True
                start = text.find(head, start + 1)
    return False


def test_every_variable_appears_in_the_pdf_text(quick_build):
    work, _ = quick_build
    text = pc.normalise_pdf_text(_pdf_text(work / "ms.pdf"))
    missing = []
    for var in pc.variables((work / "src/tex/ms.tex").read_text()):
        content = (work / "src/tex" / var).read_text()
        if "\\begin{tabular}" in content:
            rows = [r for r in content.split("\\\\") if "&" in r]
            needles = [pc.latex_to_text(cell) for r in rows for cell in r.split("&")]
        else:
            needles = [pc.latex_to_text(content)]
        missing += [f"{var}: {n}" for n in needles if n and not _found(n, text)]
    assert not missing, "variables not found in the PDF text:\n" + "\n".join(missing)


def test_no_undefined_references_or_citations(quick_build):
    work, _ = quick_build
    text = _pdf_text(work / "ms.pdf")
    assert "??" not in text
    log = (work / ".showyourwork/compile/ms.log").read_text(errors="replace")
    for pattern in ("Citation `", "Reference `", "There were undefined"):
        bad = [line for line in log.splitlines() if pattern in line and "undefined" in line]
        assert not bad, bad[:5]

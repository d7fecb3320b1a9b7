"""The offline shims: argument mapping and the fontawesome fallback order."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "tools" / "offline" / "bin"
sys.path.insert(0, str(BIN))

import offline_shims as shims  # noqa: E402


def test_strip_conda_flags_removes_every_form():
    args = [
        "--cores",
        "2",
        "--use-conda",
        "--conda-frontend",
        "mamba",
        "--reason",
        "--conda-frontend=conda",
        "-s",
        "build.smk",
    ]
    assert shims.strip_conda_flags(args) == ["--cores", "2", "--reason", "-s", "build.smk"]


def test_strip_conda_flags_keeps_other_args_untouched():
    args = ["--cores", "1", "--cache", "-s", "x.smk", "target"]
    assert shims.strip_conda_flags(args) == args


def test_patch_asyncio_restores_coroutine_identity(monkeypatch):
    monkeypatch.delattr(asyncio, "coroutine", raising=False)
    shims.patch_asyncio()

    def f():
        return 1

    assert asyncio.coroutine(f) is f  # type: ignore[attr-defined]


def test_tectonic_preprocess_pass_maps_to_one_pdflatex_run():
    cmd = shims.tectonic_command(
        ["--chatter", "minimal", "--keep-logs", "--keep-intermediates", "-r", "0", "/x/ms.tex"]
    )
    assert cmd[0] == "pdflatex"
    assert cmd[-1] == "/x/ms.tex"
    assert "-interaction=nonstopmode" in cmd and "-halt-on-error" in cmd


def test_tectonic_final_pass_maps_to_latexmk_with_bibtex_and_synctex():
    cmd = shims.tectonic_command(["--chatter", "minimal", "--keep-logs", "--synctex", "ms.tex"])
    assert cmd[:2] == ["latexmk", "-pdf"]
    assert "-bibtex" in cmd and "-synctex=1" in cmd and cmd[-1] == "ms.tex"
    assert "-synctex=1" not in shims.tectonic_command(["ms.tex"])


@pytest.mark.parametrize(
    "bad", [["--unknown-flag", "ms.tex"], [], ["a.tex", "b.tex"], ["-r", "x", "ms.tex"]]
)
def test_tectonic_rejects_what_it_does_not_understand(bad):
    with pytest.raises(ValueError, match="tectonic shim"):
        shims.tectonic_command(bad)


def test_texinputs_puts_fallback_after_system_tree():
    value = shims.texinputs_with_fallback("/my/tex")
    parts = value.split(os.pathsep)
    assert parts[0] == "." and "/my/tex" in parts
    empty = parts.index("")  # kpathsea: the empty entry is the system tree
    assert parts.index(str(shims.FALLBACK_TEX_DIR)) > empty
    assert parts.index("/my/tex") < empty


@pytest.mark.skipif(
    shutil.which("kpsewhich") is None, reason="TeX Live not installed (make installs it)"
)
def test_fallback_is_used_only_when_the_real_package_is_missing(tmp_path):
    """kpsewhich with the shim's TEXINPUTS: a 'real' fontawesome5.sty earlier in the
    path wins; without it the fallback is found."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "fontawesome5.sty").write_text("% real package\n")
    env = dict(os.environ, TEXINPUTS=shims.texinputs_with_fallback(str(real)))
    found = subprocess.run(
        ["kpsewhich", "fontawesome5.sty"], env=env, capture_output=True, text=True
    ).stdout.strip()
    assert Path(found).resolve() == (real / "fontawesome5.sty").resolve()
    system = subprocess.run(
        ["kpsewhich", "fontawesome5.sty"], capture_output=True, text=True
    ).stdout.strip()
    env = dict(os.environ, TEXINPUTS=shims.texinputs_with_fallback(None))
    found = subprocess.run(
        ["kpsewhich", "fontawesome5.sty"], env=env, capture_output=True, text=True
    ).stdout.strip()
    expected = Path(system) if system else shims.FALLBACK_TEX_DIR / "fontawesome5.sty"
    assert Path(found).resolve() == expected.resolve()


def test_snakemake_shim_runs_snakemake_without_conda_flags(tmp_path):
    """The shim starts Snakemake 7 on Python 3.11 and accepts showyourwork's conda flags."""
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text("rule all:\n    output: 'done.txt'\n    shell: 'echo ok > {output}'\n")
    proc = subprocess.run(
        [
            sys.executable,
            str(BIN / "snakemake"),
            "--cores",
            "1",
            "--use-conda",
            "--conda-frontend",
            "conda",
            "-s",
            str(snakefile),
            "-d",
            str(tmp_path),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "done.txt").read_text().strip() == "ok"

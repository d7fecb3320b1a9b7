"""Every number script names its outputs once (issue 30, item 3).

Each ``src/scripts/num_*.py`` declares the variables it writes in ``outputs(profile)``; the
Snakefile's number rules read them with :func:`shearbridge.paper.outputs.script_outputs`, and
:func:`shearbridge.paper.outputs.run_numbers` fails a script whose ``main`` wrote anything else.
Checked here: every ``\\variable{output/<name>.txt}`` of the manuscript is declared by exactly one
script for the quick and the paper profile, no two scripts declare the same name, and the guard
names undeclared and unwritten variables.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shearbridge import layout
from shearbridge.config import get_profile
from shearbridge.paper import outputs as O

SCRIPTS = sorted(layout.SCRIPTS.glob("num_*.py"))
#: Scripts whose outputs() is still to come (none: every script declares its outputs).
PENDING: tuple[str, ...] = ()
PROFILES = ("quick", "paper")


def tex_variables() -> set[str]:
    """Every ``\\variable{output/<name>.txt}`` of the manuscript's .tex files."""
    names: set[str] = set()
    for path in layout.TEX.rglob("*.tex"):
        names |= set(re.findall(r"\\variable\{output/([^}]+)\.txt\}", path.read_text()))
    return names


def declared(profile_name: str) -> dict[str, list[str]]:
    """Variable name -> the scripts declaring it, for one profile."""
    by_name: dict[str, list[str]] = {}
    for script in SCRIPTS:
        if script.name in PENDING:
            continue
        for path in O.script_outputs(script, get_profile(profile_name)):
            by_name.setdefault(Path(path).stem, []).append(script.name)
    return by_name


def pending_prefixes() -> tuple[str, ...]:
    """The literal start of every name the pending scripts pass to write_variable."""
    found = []
    for name in PENDING:
        text = (layout.SCRIPTS / name).read_text()
        found += re.findall(r'write_variable\(\s*f?"([A-Za-z0-9_-]+)', text)
    return tuple(found)


def test_every_number_script_declares_its_outputs():
    names = {p.name for p in SCRIPTS}
    assert set(PENDING) <= names, "a pending script is gone: drop it from PENDING"
    for script in SCRIPTS:
        module = O._load_script(script.resolve())
        if script.name in PENDING:
            assert not hasattr(module, "outputs"), f"{script.name}: drop it from PENDING"
            continue
        assert callable(module.outputs), script.name
        assert "run_numbers(main, outputs)" in script.read_text(), f"{script.name}: use run_numbers"


@pytest.mark.parametrize("profile_name", PROFILES)
def test_no_two_scripts_declare_the_same_variable(profile_name):
    twice = {n: s for n, s in declared(profile_name).items() if len(s) > 1}
    assert not twice, f"declared by several scripts: {twice}"


@pytest.mark.parametrize("profile_name", PROFILES)
def test_every_manuscript_variable_is_declared_once(profile_name):
    by_name, prefixes = declared(profile_name), pending_prefixes()
    used = tex_variables()
    assert len(used) > 100, "the manuscript's variables were not found"
    missing = sorted(n for n in used if n not in by_name and not n.startswith(prefixes))
    assert not missing, f"\\variable files no number script declares ({profile_name}): {missing}"
    assert all(len(by_name[n]) == 1 for n in used if n in by_name)


def test_script_outputs_are_relative_files_and_main_does_not_run(tmp_path):
    script = tmp_path / "num_demo.py"
    script.write_text(
        "LOADS = []\n"
        "LOADS.append(1)\n"
        "def outputs(profile):\n"
        "    return [f'demo_{t}' for t in ('a', 'b')]\n"
        "def main():\n"
        "    raise AssertionError('main ran')\n"
        "if __name__ == '__main__':\n"
        "    main()\n"
    )
    files = O.script_outputs(script, get_profile("quick"))
    assert files == ["src/tex/output/demo_a.txt", "src/tex/output/demo_b.txt"]
    assert str(O.OUTPUT_DIR_RELATIVE) == "src/tex/output"
    O.script_outputs(str(script), get_profile("paper"))  # loaded once per script
    assert O._load_script(script.resolve()).LOADS == [1]


def test_script_outputs_refuses_a_bad_declaration(tmp_path):
    none = tmp_path / "num_none.py"
    none.write_text("def main():\n    pass\n")
    with pytest.raises(O.OutputDeclarationError, match="must define outputs"):
        O.script_outputs(none, get_profile("quick"))
    twice = tmp_path / "num_twice.py"
    twice.write_text("def outputs(profile):\n    return ['x', 'y', 'x']\n")
    with pytest.raises(O.OutputDeclarationError, match=r"names twice \['x'\]"):
        O.script_outputs(twice, get_profile("quick"))


@pytest.fixture
def output_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "OUTPUT", tmp_path / "output")
    monkeypatch.setenv("SHEARBRIDGE_PROFILE", "quick")
    return tmp_path / "output"


def test_the_guard_passes_what_was_declared(output_dir):
    def main():
        O.write_variable("demo_a", "1")
        O.write_variable("demo_b", "2")

    O.run_numbers(main, lambda profile: ["demo_a", "demo_b"])
    assert sorted(p.name for p in output_dir.iterdir()) == ["demo_a.txt", "demo_b.txt"]


def test_the_guard_names_an_undeclared_write(output_dir):
    def main():
        O.write_variable("demo_a", "1")
        O.write_variable("demo_extra", "2")

    with pytest.raises(O.OutputDeclarationError, match="written but not declared: demo_extra") as e:
        O.run_numbers(main, lambda profile: ["demo_a"])
    assert "test_number_outputs.py" in str(e.value), "the message names the script"


def test_the_guard_names_an_unwritten_declaration(output_dir):
    def main():
        O.write_variable("demo_a", "1")

    with pytest.raises(O.OutputDeclarationError, match="declared but not written: demo_b, demo_c"):
        O.run_numbers(main, lambda profile: ["demo_a", "demo_b", "demo_c"])


def test_the_guard_checks_the_profile_it_is_given(output_dir):
    seen = []

    def outputs(profile):
        seen.append(profile.name)
        return ["demo_a"]

    O.run_numbers(lambda: O.write_variable("demo_a", "1"), outputs, get_profile("paper"))
    O.run_numbers(lambda: O.write_variable("demo_a", "1"), outputs)  # the active profile
    assert seen == ["paper", "quick"]


def test_a_package_error_in_main_is_one_line_not_a_guard_error(output_dir, capsys):
    from shearbridge.errors import MissingFileError

    def main():
        raise MissingFileError("missing summary: run `make`")

    with pytest.raises(SystemExit) as exit_:
        O.run_numbers(main, lambda profile: ["demo_a"])
    assert exit_.value.code == 2 and "error: missing summary" in capsys.readouterr().err

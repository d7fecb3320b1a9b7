"""Number formatting for the manuscript and atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from shearbridge import io
from shearbridge.paper.outputs import fmt_num, fmt_pm, fmt_sci


@pytest.mark.parametrize(
    "x, expected",
    [
        (3.14159e-5, r"${3.1\times10^{-5}}$"),
        (0.0123, "${0.012}$"),
        (9.96e-6, r"${1.0\times10^{-5}}$"),
        (250.0, "${250}$"),
    ],
)
def test_fmt_sci(x, expected):
    assert fmt_sci(x) == expected


@pytest.mark.parametrize(
    "v, e, expected",
    [
        (1.234, 0.05, r"${1.23\pm0.05}$"),
        (3.1e-5, 2e-6, r"${(3.1\pm0.2)\times10^{-5}}$"),
        (12.0, 3.0, r"${12\pm3}$"),
        (-4e-4, 3e-3, r"${(0\pm3)\times10^{-3}}$"),
    ],  # rounds to zero: no "-0"
)
def test_fmt_pm_rounds_at_the_error(v, e, expected):
    assert fmt_pm(v, e) == expected


def test_fmt_pm_rejects_nan():
    with pytest.raises(ValueError):
        fmt_pm(float("nan"), 1.0)


def test_fmt_num():
    assert fmt_num(0.012345, 2) == "0.012" and fmt_num(123.4, 2) == "123"


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_write_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        io.write_json(tmp_path / "a.json", {"x": float("nan")})
    assert not (tmp_path / "a.json").exists()


def test_atomic_dir_replaces_whole_folder(tmp_path):
    target = tmp_path / "d"
    with io.atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError):
        with io.atomic_dir(target) as tmp:
            (tmp / "b.txt").write_text("2")
            raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_every_method_keeps_one_style_and_label_in_every_figure():
    from shearbridge.paper import plotting

    from shearbridge import study
    from shearbridge.config import ConfigError

    plotted = [
        m.name
        for m in study.methods(available_only=False)
        if m.kind != "bound" and not {"ablation", "seeds"} & m.studies
    ]
    styles = [plotting.method_style(m) for m in plotted]
    keys = {(s["color"], str(s["linestyle"]), s["marker"]) for s in styles}
    assert len(keys) == len(styles), "two methods share a style"
    assert len({s["marker"] for s in styles}) == len(styles), "markers must differ (greyscale)"
    assert plotting.method_label("shapenet") == "ShapeNet"
    assert plotting.method_label("moments_affine") == "Moments + affine fit"
    with pytest.raises(ConfigError, match="unknown method"):
        plotting.method_label("unknown")


def test_fmt_int_groups_thousands_for_latex():
    from shearbridge.paper.outputs import fmt_int

    assert (
        fmt_int(32768) == "$32{,}768$"
        and fmt_int(125000) == "$125{,}000$"
        and fmt_int(53) == "$53$"
    )


def test_tables_and_noise_levels_are_formatted_in_the_library():
    from shearbridge.paper.outputs import fmt_noise
    from shearbridge.paper.tables import bias_table, layer_table
    from shearbridge.stats.resample import quotient

    assert fmt_noise(1e-5) == "$10^{-5}$" and fmt_noise(2.5e-2) == "${0.025}$"
    q, q_err = quotient(6.0, 0.3, 2.0, 0.2)
    assert q == 3.0 and abs(q_err - 3.0 * (0.05**2 + 0.1**2) ** 0.5) < 1e-12
    row = {
        "noise_sigma": 1e-3,
        **{k: 0.01 for k in ("m1", "m2", "c1", "c2")},
        **{f"{k}_err": 0.002 for k in ("m1", "m2", "c1", "c2")},
    }
    table = bias_table({"mlfit": {"1e-03": row}}, ["1e-03"], lambda m: "ML fit")
    lines = table.splitlines()  # scaled to the width of its float around the tabular
    assert lines[0].startswith("\\resizebox{\\linewidth}") and lines[1].startswith(
        "\\begin{tabular}"
    )
    assert lines[5].startswith("ML fit & $10^{-3}$ & ") and table.endswith("\\end{tabular}}")
    assert "\\texttt{conv1} & A & $53\\times53\\times16$" in layer_table(
        {"conv1": (53, 53, 16)}, {"conv1": "A"}
    )


def test_a_figure_is_never_drawn_from_another_profiles_summary(tmp_path, monkeypatch):
    """Summaries of all profiles share src/data/summary/: a mismatch is refused, naming the fix."""
    from shearbridge.config import ConfigError
    from shearbridge.io import save_npz, write_json
    from shearbridge.summaries import load_summary_json, load_summary_npz, summary_dir

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    write_json(summary_dir() / "compare.json", {"profile": "quick", "compare": {}})
    save_npz(summary_dir() / "stamps.npz", clean=np.zeros(2), profile=np.asarray("quick"))
    monkeypatch.setenv("SHEARBRIDGE_PROFILE", "paper")
    with pytest.raises(
        ConfigError, match="holds the quick profile's results, but the active profile is paper"
    ):
        load_summary_json("compare")
    with pytest.raises(ConfigError, match="python -m shearbridge summarize stamps --profile paper"):
        load_summary_npz("stamps")
    monkeypatch.setenv("SHEARBRIDGE_PROFILE", "quick")
    assert load_summary_json("compare")["profile"] == "quick" and "clean" in load_summary_npz(
        "stamps"
    )


def test_compare_table_shows_failures_seed_scatter_and_snr():
    from shearbridge.paper.tables import compare_table

    row = {
        "ratio": 1.0,
        "ratio_err": 0.03,
        "robust_ratio": 1.1,
        "robust_ratio_err": 0.05,
        "n_flagged": 0,
        "flagged_fraction": 0.0,
    }
    common = {
        "1e-05": {"methods": {"a": row, "b": row | {"n_flagged": 7, "flagged_fraction": 0.0684}}}
    }
    tex = compare_table(
        common,
        {"1e-05": {"median": 21434.0}},
        ["1e-05"],
        {"1e-05": 1e-5},
        ["a", "b"],
        str.upper,
        {("a", "1e-05"): 0.04},
    )
    a_row, b_row = [line for line in tex.splitlines() if line.startswith(("A &", "B &"))]
    assert "${1.00\\pm0.05}$" in a_row, "bootstrap 0.03 and seed scatter 0.04 add in quadrature"
    assert "[6.8\\%]" in b_row and "[" not in a_row, "failures only where a method flagged"
    assert "21{,}000" in tex


def test_a_list_reads_as_running_text():
    from shearbridge.paper.outputs import fmt_list

    assert fmt_list(["$1$"]) == "$1$"
    assert fmt_list(["$1$", "$2$"]) == "$1$ and $2$"
    assert fmt_list(["a", "b", "c"]) == "a, b and c"
    assert fmt_list([]) == "none"

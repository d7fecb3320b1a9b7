"""The user's path through the command line (issue 31, items 1, 6, 7).

* ``measure`` names a catalogue's columns for what they hold: an ellipticity with a per-stamp
  response (AnaCal) is ``e1, e2, R1, R2``, and ``sum(e) / sum(R)`` recovers the applied shear;
* ``list`` into a pipe that closed early ends quietly (no BrokenPipeError traceback);
* ``list`` says what each method is, whether it is ready here or which command makes it ready,
  the matched-filter S/N of each noise level, and the flag bits.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shearbridge import study
from shearbridge.cli import main
from shearbridge.config import Profile, SimConfig
from shearbridge.estimators.base import FLAG_NAMES
from shearbridge.layout import Layout

ROOT = Path(__file__).resolve().parents[1]
G = 0.02  # the applied shear


def run_cli(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# ------------------------------------------------------- item 1: a catalogue says what it holds


@pytest.fixture(scope="module")
def sheared(tmp_path_factory):
    """The package's shear-test layout, noise-free (16 stamps a galaxy: four orientations 45
    degrees apart x +g, -g x +n, -n), 8 galaxies, |g| = 0.02 along one component each."""
    from shearbridge.sim import stamps as S

    sim = SimConfig(galaxy="gauss", shear_test=True, applied_shear=G)
    labels = S.draw_population(sim, 8, np.random.default_rng(11))
    plus_n = np.flatnonzero(labels["noise_sign"] > 0)  # a -n stamp repeats its +n neighbour
    stamps = np.repeat(S.render_rows(sim, labels, plus_n), 2, axis=0)
    folder = tmp_path_factory.mktemp("stamps")
    np.save(folder / "stamps.npy", stamps)
    np.save(folder / "psf.npy", S.render_psf(sim))
    return folder, labels


def _measure(capsys, folder: Path, method: str, out: str) -> dict[str, np.ndarray]:
    from shearbridge.api import read_catalogue

    files = ("--stamps", str(folder / "stamps.npy"), "--psf", str(folder / "psf.npy"))
    status, _, err = run_cli(
        capsys,
        "measure",
        "--method",
        method,
        *files,
        "--noise",
        "1e-6",
        "--profile",
        "quick",
        "--out",
        str(folder / out),
    )
    assert status == 0, err
    return read_catalogue(folder / out)


def test_an_anacal_catalogue_holds_e_and_r_and_gives_the_shear(capsys, sheared):
    pytest.importorskip("anacal")
    from shearbridge.api import ensemble_shear

    folder, labels = sheared
    cat = _measure(capsys, folder, "anacal", "anacal.npz")
    assert list(cat)[:6] == ["index", "e1", "e2", "R1", "R2", "flags"] and "g1" not in cat
    assert np.all(cat["flags"] == 0) and np.all(np.isfinite(cat["R1"]))
    csv = _measure(capsys, folder, "anacal", "anacal.csv")
    assert list(csv) == list(cat)
    np.testing.assert_allclose(csv["e1"], cat["e1"], rtol=1e-12)
    comp, plus = labels["pair_id"] % 2, labels["sign"] == 1
    for k in (0, 1):  # the +g stamps sheared along component k: g_k = 0.02, the other 0
        rows = {c: v[plus & (comp == k)] for c, v in cat.items()}
        g = ensemble_shear(rows)
        assert abs(g[k] / G - 1) < 1e-2 and abs(g[1 - k]) < 1e-4, (k, g)
        # the per-stamp e is an ellipticity, not a shear: its mean is about half of g
        assert 0.3 * G < np.mean(rows[f"e{k + 1}"]) < 0.8 * G
    # the whole set: +g and -g cancel, and the catalogue file itself gives it
    np.testing.assert_allclose(ensemble_shear(folder / "anacal.csv"), 0.0, atol=1e-4)


def test_a_shear_catalogue_is_g_and_its_ensemble_shear_the_mean(capsys, sheared):
    from shearbridge.api import ensemble_shear

    folder, labels = sheared
    cat = _measure(capsys, folder, "hsm_regauss", "hsm.csv")
    assert list(cat)[:4] == ["index", "g1", "g2", "flags"] and "e1" not in cat and "R1" not in cat
    sel = (labels["sign"] == 1) & (labels["pair_id"] % 2 == 0) & (cat["flags"] == 0)
    g1, _ = ensemble_shear({c: v[sel] for c, v in cat.items()})
    assert g1 == pytest.approx(np.mean(cat["g1"][sel])) and abs(g1 / G - 1) < 0.05


def test_a_full_response_matrix_is_kept_and_inverted(tmp_path):
    """A metacalibration-like result (``extra["R"]`` (N, 2, 2)): R11 .. R22, <R>^-1 <e>."""
    from shearbridge.api import ensemble_shear, read_catalogue, write_catalogue
    from shearbridge.estimators.base import EstimatorResult

    rng = np.random.default_rng(0)
    R = np.array([[0.7, 0.05], [-0.02, 0.6]]) + 0.01 * rng.normal(size=(400, 2, 2))
    e = np.einsum("nij,j->ni", R, [0.03, -0.01]) + 1e-3 * rng.normal(size=(400, 2))
    flags = np.zeros(400, int)
    flags[0], e[0] = 1, 99.0  # a flagged row is left out
    res = EstimatorResult(g1=e[:, 0], g2=e[:, 1], flags=flags, extra={"R": R})
    cat = read_catalogue(write_catalogue(tmp_path / "mcal.npz", res))
    assert list(cat)[:7] == ["index", "e1", "e2", "R11", "R12", "R21", "R22"]
    np.testing.assert_allclose(ensemble_shear(cat), [0.03, -0.01], atol=3e-4)


def test_measure_help_and_the_readme_say_how_to_get_the_shear(capsys):
    with pytest.raises(SystemExit):
        main(["measure", "--help"])
    text = capsys.readouterr().out
    assert "e1, e2, R1, R2" in text and "g_i = sum(e_i) / sum(R_i)" in text
    assert "ensemble_shear" in text
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Measure your own stamps")[1].split("\n## ")[0]
    assert "g_i = sum(e_i) / sum(R_i)" in section and "e1, e2, R1, R2" in section
    assert "ensemble_shear" in section
    flags = section.split("**Flags.**")[1]  # the Flags paragraph names every bit
    assert all(f"{bit} `{name}`" in " ".join(flags.split()) for bit, name in FLAG_NAMES.items())


# ------------------------------------------------------- item 6: a pipe closed early


@pytest.mark.pipeline
def test_list_into_a_closed_pipe_ends_quietly(tmp_path):
    """`shearbridge list | head`: the reader leaves; no traceback, status 141 (as SIGPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    env = {**os.environ, "SHEARBRIDGE_DATA": str(tmp_path)}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "shearbridge", "list", "--profile", "quick"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr
    script = (
        f"set -o pipefail; {shlex.quote(sys.executable)} -m shearbridge list --profile quick"
        " | head -n 2"
    )
    head = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert head.stdout.startswith("profile quick: noise levels") and head.stdout.count("\n") == 2
    assert head.returncode in (0, 141) and head.stderr == "", head.stderr


# ------------------------------------------------------- item 7: what list says


def _blocks(out: str) -> dict[str, list[str]]:
    """The method lines of `list`: each method's first line and the indented lines below it."""
    methods = out.split("\nmethods (")[1].split("\n\nflags")[0].splitlines()[1:]
    blocks: dict[str, list[str]] = {}
    for line in methods:
        if not line.startswith("      "):
            blocks[line.split()[0]] = [line]
        else:
            blocks[list(blocks)[-1]].append(line.strip())
    return blocks


def test_list_on_an_empty_data_root_says_how_to_build_each_thing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    status, out, _ = run_cli(capsys, "list", "--profile", "quick")
    assert status == 0
    assert (
        "S/N: simulate the test set first (python -m shearbridge simulate --dataset test "
        "--profile quick)" in out
    )
    blocks = _blocks(out)
    assert set(blocks) == set(study.names(available_only=False))
    for m in study.methods(available_only=False):
        assert m.description in blocks[m.name], m.name
    assert "ellipticity" in blocks["anacal"][1]  # AnaCal measures an ellipticity, not a shear
    assert blocks["psfnet"][-1].startswith(
        "not trained: python -m shearbridge population train --profile quick"
    )
    assert "classical" in blocks["moments_affine"][0]  # listed as classical, yet it needs a fit:
    assert blocks["moments_affine"][-1].startswith(
        "not fitted: python -m shearbridge train --config moments_affine --noise SIGMA "
        "--profile quick"
    )
    assert blocks["baseline"][-1].startswith(
        "not trained: python -m shearbridge train --config baseline --noise SIGMA --profile quick"
    )
    assert blocks["mlfit"][-1] == "ready at every noise level"
    assert "python -m shearbridge crlb --profile quick" in blocks["crlb"][-1]
    # the flag bits end the listing, each with its meaning
    tail = out.split("\n\nflags (")[1].splitlines()[1:]
    assert [(int(line.split()[0]), line.split()[1]) for line in tail] == sorted(FLAG_NAMES.items())
    assert all(len(line.split()) > 3 for line in tail), "every bit has its meaning"
    assert "did not converge" in next(line for line in tail if "not_converged" in line)


def test_list_says_which_networks_are_ready_at_which_levels(capsys, tmp_path, monkeypatch):
    from shearbridge.config import get_profile
    from shearbridge.estimators import base
    from shearbridge.estimators.factories import PSFNET_ENTRY

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    layout = Layout(get_profile("quick"))
    for sigma in (1e-5, 1e-3):
        layout.run_metrics("baseline", sigma).parent.mkdir(parents=True)
        layout.run_metrics("baseline", sigma).write_text("{}")
    layout.population_network(PSFNET_ENTRY).parent.mkdir(parents=True)
    layout.population_network(PSFNET_ENTRY).write_bytes(b"")
    monkeypatch.setitem(base.FLAG_NAMES, 1 << 12, "a_new_bit")  # read when listed
    status, out, _ = run_cli(capsys, "list", "--profile", "quick")
    blocks = _blocks(out)
    assert blocks["baseline"][-1] == (
        "ready at noise 1e-05, 0.001 (trained there); other levels: "
        "python -m shearbridge train --config baseline --noise SIGMA "
        "--profile quick"
    )
    assert blocks["psfnet"][-1].startswith("ready at every noise level")
    assert re.search(r"^\s+4096\s+a_new_bit$", out, re.M)
    listed = out.split("\nexperiments (")[1].split("\n\n")[0].splitlines()[1:]
    experiments = {line.split()[0]: line for line in listed}
    assert experiments["baseline"].split()[1:] == ["1e-05,", "0.001"]


def test_list_gives_the_matched_filter_snr_of_each_noise_level(capsys, tmp_path, monkeypatch):
    from shearbridge.sim.datasets import generate_dataset, load_dataset
    from shearbridge.stats.crlb import matched_filter_snr
    from shearbridge.steps import command

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    tiny = Profile(
        name="tiny",
        noise_grid=(1e-4, 1e-3),
        n_train=16,
        n_test=32,
        n_crlb=32,
        n_shear_pairs=4,
        bootstrap=10,
    )
    generate_dataset("test", tiny, workers=1, progress=False)
    monkeypatch.setattr(command, "get_profile", lambda name, source=None: tiny)
    status, out, _ = run_cli(capsys, "list", "--profile", "tiny")
    assert status == 0
    clean = load_dataset("test", tiny).images(0.0)[: tiny.n_crlb]
    for sigma in tiny.noise_grid:
        line = next(x for x in out.splitlines() if x.split()[:1] == [f"{sigma:g}"])
        median = float(re.search(r"median matched-filter S/N (\d+)", line).group(1))
        assert median == pytest.approx(np.median(matched_filter_snr(clean, sigma)), abs=0.5)

"""The floor and tuning steps end to end on a tiny profile, and the number script's refusal.

Tiny Gaussian test and training sets under a temporary data root, their autodiff bound,
stand-in comparison results of two of the four binned methods (estimates drawn from the
bound: the other two are missing and must be skipped), then ``run_floor``, ``run_tuning``,
the summary (``summarize floor``) and ``src/scripts/num_floor.py`` (writing into a temporary
output folder).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest


from shearbridge.config import Profile
from shearbridge.io import save_npz
from shearbridge.sim.datasets import generate_dataset, load_dataset
from shearbridge.steps import floor as FS
from shearbridge.steps import tune as TS
from shearbridge.results import load_crlb
from shearbridge.steps.crlb import compute_crlb
from shearbridge.summaries.collect import write_summary
from shearbridge.summaries.floor import write_floor_summary
from shearbridge import layout
from shearbridge.layout import Layout

pytestmark = pytest.mark.pipeline  # trainings or pipeline steps end to end: not in `make check`

ROOT = Path(__file__).resolve().parents[1]


def _num_floor():
    spec = importlib.util.spec_from_file_location(
        "num_floor", ROOT / "src" / "scripts" / "num_floor.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("data")
    mp.setenv("SHEARBRIDGE_DATA", str(root))
    # compilation dominates here (one per moment call): a persistent cache of this module's own
    # turns the repeated identical compilations into look-ups. 64 fitted training objects and
    # 64 comparison galaxies: the same batch shape, so one compilation per variant.
    import jax
    from jax._src import compilation_cache

    old = {
        k: getattr(jax.config, k)
        for k in (
            "jax_compilation_cache_dir",
            "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes",
        )
    }
    compilation_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    profile = Profile(
        name="tiny",
        noise_grid=(1e-4, 1e-3),
        n_train=80,
        n_test=64,
        n_crlb=64,
        n_shear_pairs=4,
        bootstrap=20,
    )
    for name in ("test", "train"):
        generate_dataset(name, profile, workers=1, progress=False)
    compute_crlb(profile)
    sigma = profile.noise_grid[0]
    true = load_dataset("test", profile).targets(2)[: profile.n_crlb]
    crlb = load_crlb(profile, sigma)
    rng = np.random.default_rng(0)
    for m, scale in (("shapenet", 1.0), ("hsm_regauss", 3.0)):
        g = true + scale * crlb * rng.normal(size=true.shape)
        flags = np.zeros(len(g), int)
        flags[:2] = 1  # two flagged galaxies, left out
        g[1] = np.nan
        save_npz(
            Layout(profile).result("compare", m, sigma, suffix=".npz"), g=g, flags=flags, true=true
        )
    floor = json.loads(FS.run_floor(profile).read_text())
    tuning = json.loads(TS.run_tuning(profile).read_text())
    for k, v in old.items():
        jax.config.update(k, v)
    compilation_cache.reset_cache()
    yield profile, root, floor, tuning
    mp.undo()


def test_floor_json(tiny):
    profile, root, f, _ = tiny
    assert Layout(profile).diagnosis("floor.json") == root / "tiny" / "diagnosis" / "floor.json"
    assert f["noise_sigma"] == profile.noise_grid[0] and f["n"] == profile.n_crlb
    assert f["methods"] == ["shapenet", "hsm_regauss"]
    assert f["missing_methods"] == ["moments_affine", "mlfit"]
    for m in f["methods"]:
        b = f["binned"][m]
        assert b["n_flagged"] == 2 and b["all"]["n"] == profile.n_crlb - 2
        assert (
            sum(r["n"] for r in b["size_px"])
            == sum(r["n"] for r in b["out_flux"])
            == profile.n_crlb - 2
        )
        for r in b["size_px"] + b["out_flux"]:
            assert {
                "lo",
                "hi",
                "x_median",
                "rms_ratio",
                "rms_ratio_err",
                "median_ratio",
                "trimmed_ratio",
            } <= set(r)
    assert (
        f["binned"]["hsm_regauss"]["all"]["rms_ratio"] > f["binned"]["shapenet"]["all"]["rms_ratio"]
    )
    rows = f["floor"]["rows"]
    assert [r["key"] for r in rows] == 2 * ["reference", "float64", "niter16", "nopixel"]
    assert {r["subset"] for r in rows} == {"all", "no_largest"}
    assert rows[0]["d_rms_ratio"] == 0 and all(np.isfinite(r["d_rms_ratio_err"]) for r in rows)
    assert f["floor"]["n_fit"] == len(FS.fit_split(profile.n_train, profile)[0])
    c = f["clean"]
    # the same reference estimator: its noisy ratio is the floor experiment's reference row
    assert c["noisy"]["all"]["rms_ratio"] == pytest.approx(rows[0]["rms_ratio"], rel=1e-6)
    assert {"noisy", "noise_free", "noise_part", "readout"} <= set(c)


def test_tuning_json(tiny):
    profile, root, _, t = tiny
    from shearbridge.models.moments import WEIGHT_FRACTIONS

    assert (
        Layout(profile).diagnosis("weight_fractions.json")
        == root / "tiny" / "diagnosis" / "weight_fractions.json"
    )
    assert t["current"] == [float(x) for x in WEIGHT_FRACTIONS]
    assert t["agrees"] == (t["choice"] == t["current"])
    assert len(t["table"]) == len(t["candidates"]) * len(profile.noise_grid)
    assert set(t["scores"]) == {"bound", "sum", "quadrature"}
    assert all(len(v) == len(t["candidates"]) for v in t["scores"].values())
    best = t["candidates"][int(np.argmin(t["scores"][t["score"]]))]
    assert t["choice"] == best
    assert all(r["n_val"] == 16 for r in t["table"])  # round(0.2 * 80), no test galaxy


def test_summary_figure_and_numbers(tiny, tmp_path, monkeypatch):
    profile, root, f, t = tiny
    out = write_floor_summary(profile)
    assert out == root / "summary" / "floor.json"
    s = json.loads(out.read_text())
    assert s["profile"] == "tiny" and set(s) == {"profile", "floor", "tuning"}
    assert s["floor"] == f and s["tuning"] == t
    # `python -m shearbridge summarize floor` writes the same bytes
    before = out.read_bytes()
    out.unlink()
    write_summary("floor", profile)
    assert out.read_bytes() == before
    num = _num_floor()
    monkeypatch.setattr(layout, "OUTPUT", tmp_path / "output")
    from shearbridge.models import moments

    # as the configured fractions agree with the choice: numbers are written ...
    agreeing = {**s["tuning"], "current": list(t["choice"]), "agrees": True}
    out.write_text(json.dumps({**s, "tuning": agreeing}))
    monkeypatch.setattr(moments, "WEIGHT_FRACTIONS", tuple(t["choice"]))
    num.main()
    written = {p.stem: p.read_text() for p in (tmp_path / "output").glob("*.txt")}
    for name in (
        "floor_reference_all",
        "floor_nopixel_no5",
        "floor_median_float64",
        "floor_delta_niter16_all",
        "floor_clean_ratio",
        "floor_smallbin_shapenet",
        "floor_lowflux_hsm_regauss",
        "tune_choice",
        "tune_current",
        "tune_table",
    ):
        assert name in written, name
    assert "\\pm" in written["floor_reference_all"]
    assert "floor_smallbin_mlfit" not in written  # no result, no number
    assert written["tune_table"].count("\\\\") == len(t["candidates"]) + 2
    # ... and refused when they do not
    other = [c for c in t["candidates"] if c != t["choice"]][0]
    out.write_text(json.dumps({**s, "tuning": {**agreeing, "current": other, "agrees": False}}))
    with pytest.raises(SystemExit, match="not the validation choice"):
        num.main()
    # the file agrees but the constant changed since the tuning step ran
    out.write_text(json.dumps({**s, "tuning": agreeing}))
    monkeypatch.setattr(moments, "WEIGHT_FRACTIONS", tuple(other))
    with pytest.raises(SystemExit, match="is now"):
        num.main()


def test_figure_draws(tiny, tmp_path, monkeypatch):
    profile, *_ = tiny
    write_floor_summary(profile)
    spec = importlib.util.spec_from_file_location(
        "fig_floor", ROOT / "src" / "scripts" / "fig_floor.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from shearbridge.paper import plotting

    monkeypatch.setattr(plotting, "figure_path", lambda name: tmp_path / f"{name}.pdf")
    mod.main()
    assert (tmp_path / "fig_floor.pdf").stat().st_size > 1000

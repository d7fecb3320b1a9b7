"""Tests of the cached datasets (shearbridge.sim.datasets), on tiny profiles under tmp_path."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from shearbridge.layout import Layout
from shearbridge.config import ConfigError, SimConfig, get_profile
from shearbridge.sim import catalogue as C
from shearbridge.sim import datasets as D

TINY = dataclasses.replace(
    get_profile("quick"), name="tiny", n_train=64, n_test=48, n_crlb=16, n_shear_pairs=6
)
K = 5.0  # k-sigma tolerance of statistical checks


@pytest.fixture
def small_chunks(monkeypatch):
    """Several chunks even for tiny datasets (chunking must never change the data)."""
    monkeypatch.setattr(D, "CHUNK_OBJECTS", 16)


def _arrays(ds: D.Dataset) -> dict[str, np.ndarray]:
    out = {"clean": np.asarray(ds.clean), "noise": np.asarray(ds.noise), "psf": ds.psf}
    out.update({f"label:{k}": v for k, v in ds.labels.items()})
    return out


def test_same_seed_gives_identical_dataset_for_any_worker_count(tmp_path, monkeypatch):
    loaded = []
    for workers, chunk in [(1, 16), (2, 16), (2, 40)]:
        monkeypatch.setattr(D, "CHUNK_OBJECTS", chunk)
        monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path / f"w{workers}c{chunk}"))
        D.generate_dataset("train", TINY, workers=workers, progress=False)
        loaded.append(D.load_dataset("train", TINY))
    ref = _arrays(loaded[0])
    for ds in loaded[1:]:
        other = _arrays(ds)
        assert other.keys() == ref.keys()
        for key in ref:
            assert_array_equal(other[key], ref[key], err_msg=key)
        assert ds.manifest["config_hash"] == loaded[0].manifest["config_hash"]


def test_dataset_contents(data_root):
    path = D.generate_dataset("train", TINY, workers=1, progress=False)
    assert path == Layout(TINY).dataset("train") and path.is_relative_to(data_root)
    ds = D.load_dataset("train", TINY)
    assert len(ds) == 64
    assert ds.clean.shape == ds.noise.shape == (64, 53, 53)
    assert ds.clean.dtype == ds.noise.dtype == ds.psf.dtype == np.float32
    assert ds.psf.shape == (53, 53)
    assert_allclose(ds.psf.sum(), 1.0, rtol=1e-5)
    # the clean stamps hold the label flux (the stamp truncates only the largest galaxies)
    ratio = ds.clean.sum(axis=(1, 2), dtype=np.float64) / ds.labels["flux"]
    assert np.all(ratio <= 1 + 1e-5) and np.median(ratio) > 0.999
    man = ds.manifest
    for key in (
        "dataset",
        "sim",
        "n_objects",
        "seed",
        "stream_id",
        "config_hash",
        "versions",
        "created",
        "wall_time_s",
    ):
        assert key in man, key
    assert man["dataset"] == "train" and man["n_objects"] == 64 and man["seed"] == TINY.seed
    assert set(man["versions"]) == {"galsim", "numpy", "shearbridge"}
    assert json.loads((path / "manifest.json").read_text()) == man


def test_train_and_test_noise_are_independent(data_root):
    for name in ("train", "test"):
        D.generate_dataset(name, TINY, workers=1, progress=False)
    train, test = D.load_dataset("train", TINY), D.load_dataset("test", TINY)
    n = min(len(train), len(test))
    a = np.asarray(train.noise[:n], np.float64).ravel()
    b = np.asarray(test.noise[:n], np.float64).ravel()
    # correlation of independent unit normals: mean 0, standard deviation 1/sqrt(N)
    r = np.corrcoef(a, b)[0, 1]
    assert abs(r) < K / math.sqrt(a.size), r
    # each object's own noise field is unrelated to the same-index object of the other set
    per_object = [
        np.corrcoef(train.noise[i].ravel(), test.noise[i].ravel())[0, 1] for i in range(n)
    ]
    assert np.max(np.abs(per_object)) < K / math.sqrt(53 * 53)
    # unit-variance standard normal
    assert abs(a.mean()) < K / math.sqrt(a.size)
    assert abs(a.var() - 1.0) < K * math.sqrt(2.0 / a.size)
    # and the populations differ
    assert not np.array_equal(train.labels["g1"][:n], test.labels["g1"][:n])


def test_images_targets_subset(data_root):
    D.generate_dataset("test", TINY, workers=1, progress=False)
    ds = D.load_dataset("test", TINY, mmap=False)
    for sigma in (0.0, 1e-5, 1e-3):
        im = ds.images(sigma)
        assert im.dtype == np.float32 and im.shape == ds.clean.shape
        expect = ds.clean.astype(np.float64) + sigma * ds.noise.astype(np.float64)
        assert_allclose(im, expect, rtol=0, atol=1e-7 * np.abs(expect).max())
    with pytest.raises(ValueError, match="noise_sigma"):
        ds.images(-1e-3)
    t = ds.targets(4)
    assert t.shape == (48, 4)
    for j, key in enumerate(D.TARGET_NAMES):
        assert_array_equal(t[:, j], ds.labels[key])
    assert_array_equal(ds.targets(2), t[:, :2])
    with pytest.raises(ValueError, match="n_outputs"):
        ds.targets(5)
    sub = ds.subset(np.array([3, 1]))
    assert len(sub) == 2
    assert_array_equal(sub.clean, ds.clean[[3, 1]])
    assert_array_equal(sub.labels["flux"], ds.labels["flux"][[3, 1]])
    assert len(ds.subset(slice(0, 10))) == 10


def test_shear_pairs_share_noise_and_differ_in_sign(data_root):
    D.generate_dataset("shear", TINY, workers=1, progress=False)
    ds = D.load_dataset("shear", TINY)
    n, per = TINY.n_shear_pairs, 16
    assert len(ds) == per * n
    lab = ds.labels
    assert_array_equal(lab["orient"].reshape(n, per), np.tile(np.repeat(np.arange(4), 4), (n, 1)))
    assert_array_equal(lab["sign"].reshape(n, per), np.tile([1, 1, -1, -1], (n, 4)))
    assert_array_equal(lab["noise_sign"].reshape(n, per), np.tile([1, -1], (n, 8)))
    # one standard-normal field per galaxy and orientation, held with sign noise_sign
    noise = np.asarray(ds.noise).reshape(n, 4, 4, 53, 53)  # (galaxy, orient, 2 s + f, y, x)
    signs = np.array([1, -1, 1, -1], np.float32)[None, None, :, None, None]
    assert_array_equal(noise, signs * noise[:, :, :1])
    spec = C.get_spec("shear", TINY)
    for i in range(n):
        ss = np.random.SeedSequence(entropy=TINY.seed, spawn_key=(spec.stream_id, 1, i))
        fields = np.random.default_rng(ss).standard_normal((4, 53, 53), dtype=np.float32)
        assert_array_equal(noise[i, :, 0], fields)
    assert not np.array_equal(noise[0, 0, 0], noise[1, 0, 0])
    assert not np.array_equal(noise[0, 0, 0], noise[0, 1, 0])  # orientations: independent fields
    applied = (lab["applied_g1"] + lab["applied_g2"]).reshape(n, 4, 2, 2)
    assert_array_equal(applied[:, :, 0], -applied[:, :, 1])
    assert_array_equal(np.abs(applied), ds.sim.applied_shear)
    clean = np.asarray(ds.clean, np.float64).reshape(n, 4, 2, 2, 53, 53)  # (., orient, s, f, .)
    assert_array_equal(clean[:, :, :, 1], clean[:, :, :, 0])  # -n stamp: the +n stamp's image
    assert np.all(np.abs(clean[:, :, 0, 0] - clean[:, :, 1, 0]).max(axis=(2, 3)) > 0)  # +g vs -g
    assert np.all(
        np.abs(clean[:, 0, 0, 0] - clean[:, 1, 0, 0]).max(axis=(1, 2)) > 0
    )  # orientations


def test_interrupted_generation_leaves_nothing_behind(data_root, monkeypatch, small_chunks):
    calls = {"n": 0}
    real = D._render_chunk

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interrupt")
        return real(*args, **kwargs)

    monkeypatch.setattr(D, "_render_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        D.generate_dataset("train", TINY, workers=1, progress=False)
    target = Layout(TINY).dataset("train")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary folders either
    # an existing good dataset survives a failed regeneration untouched
    monkeypatch.setattr(D, "_render_chunk", real)
    D.generate_dataset("train", TINY, workers=1, progress=False)
    before = D.load_dataset("train", TINY, mmap=False)
    calls["n"] = 0
    monkeypatch.setattr(D, "_render_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        D.generate_dataset("train", TINY, workers=1, progress=False, force=True)
    after = D.load_dataset("train", TINY, mmap=False)
    assert_array_equal(after.clean, before.clean)
    assert sorted(p.name for p in target.parent.iterdir()) == ["train"]


def test_up_to_date_dataset_is_not_regenerated(data_root, monkeypatch):
    path = D.generate_dataset("test", TINY, workers=1, progress=False)
    created = D.load_dataset("test", TINY).manifest["created"]

    def boom(*args, **kwargs):
        raise AssertionError("regenerated an up-to-date dataset")

    monkeypatch.setattr(D, "_render_chunk", boom)
    assert D.generate_dataset("test", TINY, workers=1, progress=False) == path
    assert D.load_dataset("test", TINY).manifest["created"] == created


def test_missing_dataset_error_names_path_and_command(data_root):
    with pytest.raises(FileNotFoundError) as err:
        D.load_dataset("test", TINY)
    msg = str(err.value)
    assert str(Layout(TINY).dataset("test")) in msg
    assert "python -m shearbridge simulate --dataset test --profile tiny" in msg


def test_stale_and_corrupt_datasets_are_refused(data_root):
    path = D.generate_dataset("test", TINY, workers=1, progress=False)
    with pytest.raises(ValueError, match="stale"):
        D.load_dataset("test", dataclasses.replace(TINY, seed=TINY.seed + 1))
    clean = np.load(path / "clean.npy", mmap_mode="r+")
    clean[5, 10, 10] = np.nan
    clean.flush()
    del clean
    with pytest.raises(ValueError, match="non-finite"):
        D.load_dataset("test", TINY)
    np.save(path / "clean.npy", np.zeros((3, 53, 53), np.float32))
    with pytest.raises(ValueError, match="shape"):
        D.load_dataset("test", TINY)


def test_malformed_specs_raise_config_error_naming_the_field(data_root):
    good = C.dataset_specs(TINY)["test"]
    bad = {
        "galaxy": dataclasses.replace(good, sim=SimConfig(galaxy="spiral")),
        "psf_sigma_arcsec": dataclasses.replace(good, sim=SimConfig(psf_sigma_arcsec=-0.25)),
        "n_objects": dataclasses.replace(good, n_objects=0),
        "stream_id": dataclasses.replace(good, stream_id=-1),
    }
    for field, spec in bad.items():
        with pytest.raises(ConfigError, match=field):
            spec.validate()
    with pytest.raises(ConfigError, match="unknown dataset"):
        D.generate_dataset("tset", TINY, workers=1, progress=False)
    with pytest.raises(ConfigError, match="n_train"):
        D.generate_dataset("train", dataclasses.replace(TINY, n_train=0), workers=1, progress=False)
    with pytest.raises(ValueError, match="workers"):
        D.generate_dataset("train", TINY, workers=0, progress=False)


def test_dataset_specs():
    specs = C.dataset_specs(TINY)
    assert set(specs) == set(C.STREAM_ID)
    assert len({s.stream_id for s in specs.values()}) == len(specs)
    n_rob = max(256, TINY.n_test // 4)
    assert specs["train"].n_objects == TINY.n_train
    assert specs["train_mix"].n_objects == max(256, TINY.n_train // 4)  # a quarter (slow galaxies)
    assert specs["test"].n_objects == TINY.n_test
    assert specs["shear"].sim.shear_test and specs["shear"].n_stamps == 16 * TINY.n_shear_pairs
    psf_set = specs["shear_psf"]
    assert psf_set.sim.shear_test and (psf_set.sim.psf_g1, psf_set.sim.psf_g2) == (
        C.PSF_TEST_G,
        0.0,
    )
    assert C.PSF_TEST_G == 0.05
    assert psf_set.n_objects == max(2, TINY.n_shear_pairs // 4)
    assert psf_set.n_stamps == 16 * psf_set.n_objects
    assert dataclasses.replace(psf_set.sim, psf_g1=0.0) == specs["shear"].sim
    assert specs["test_exp"].sim.galaxy == "exp" and specs["test_exp"].n_objects == n_rob
    assert specs["test_sersic"].sim.galaxy == "sersic"
    assert specs["test_bulge_disk"].sim.galaxy == "bulge_disk"
    moffat = specs["test_moffat"].sim
    assert moffat.psf == "moffat" and moffat.psf_fwhm_arcsec == 0.7
    assert specs["test_wide_psf"].sim.psf_sigma_arcsec == 0.30
    assert specs["train_mix"].sim.galaxy == "mix"
    assert specs["train"].sim == SimConfig()
    for spec in specs.values():
        spec.validate()
    hashes = {C.spec_hash(s, TINY.seed) for s in specs.values()}
    assert len(hashes) == len(specs)


def test_validate_stamps():
    good = np.zeros((4, 53, 53), np.float32)
    assert D.validate_stamps(good, 53) is good
    D.validate_stamps(good[0], 53)
    with pytest.raises(ValueError, match="shape"):
        D.validate_stamps(np.zeros((4, 52, 53)), 53)
    with pytest.raises(ValueError, match="shape"):
        D.validate_stamps(np.zeros((4, 53, 53, 1)), 53)
    with pytest.raises(ValueError, match="empty"):
        D.validate_stamps(np.zeros((0, 53, 53)), 53)
    for value in (np.nan, np.inf):
        bad = good.copy()
        bad[2, 3, 4] = value
        with pytest.raises(ValueError, match=r"non-finite.*\[2, 3, 4\]"):
            D.validate_stamps(bad, 53)
    with pytest.raises(ValueError, match="dtype"):
        D.validate_stamps(np.full((53, 53), "a"), 53)


# ------------------------------------------------------------ corrupt, stale and left-over files


@pytest.fixture
def tiny_test_set(tmp_path, monkeypatch):
    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path))
    return D.generate_dataset("test", TINY, workers=1, progress=False)


def test_a_truncated_array_file_names_itself_and_the_fix(tiny_test_set):
    for fname in ("clean.npy", "labels.npz"):
        f = tiny_test_set / fname
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])
        with pytest.raises(
            ValueError,
            match=rf"{fname}.*corrupt or truncated.*simulate --dataset test "
            rf"--profile tiny --force",
        ):
            D.load_dataset("test", TINY)
        f.write_bytes(data)
    D.load_dataset("test", TINY)


def test_simulate_notices_altered_content_and_force_remakes(tiny_test_set):
    f = tiny_test_set / "clean.npy"
    ref = np.load(f).copy()
    arr = np.load(f, mmap_mode="r+")
    arr[:] *= 1000.0  # stamps scaled: same size, same manifest
    arr.flush()
    del arr
    with pytest.raises(ValueError, match="1e\\+03 times the flux of their labels"):
        D.load_dataset("test", TINY)
    D.generate_dataset("test", TINY, workers=1, progress=False)  # content hash differs: remade
    assert_array_equal(np.load(f), ref)
    stamp = (f.stat().st_mtime_ns, f.stat().st_ino)
    D.generate_dataset("test", TINY, workers=1, progress=False)  # up to date: kept
    assert (f.stat().st_mtime_ns, f.stat().st_ino) == stamp
    D.generate_dataset("test", TINY, workers=1, progress=False, force=True)
    assert f.stat().st_ino != stamp[1] and np.array_equal(np.load(f), ref), (
        "--force remakes the same bytes"
    )


def test_a_killed_writer_leaves_nothing_the_next_write_does_not_clean(tmp_path):
    from shearbridge.io import atomic_dir, clean_stale_tmp

    target = tmp_path / "ds"
    dead = tmp_path / ".ds.pid999999999.abc.tmp"  # no such process
    live = tmp_path / f".ds.pid{__import__('os').getpid()}.abc.tmp"
    dead.mkdir()
    live.mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert not dead.exists() and live.exists(), "only a dead writer's folder is removed"
    assert clean_stale_tmp(target) == []

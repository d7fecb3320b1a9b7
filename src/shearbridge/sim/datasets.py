"""Cached datasets: noiseless stamps and unit noise fields, generated once per profile.

A dataset lives in ``Layout(profile).dataset(name)`` = ``src/data/<profile>/datasets/<name>/``:

``clean.npy``      (N, S, S) float32 noiseless stamps (:func:`shearbridge.sim.stamps.render_clean`)
``noise.npy``      (N, S, S) float32 standard-normal (unit variance) noise fields
``labels.npz``     per-stamp labels, arrays of shape (N,)
                   (:func:`shearbridge.sim.stamps.draw_population`)
``psf.npy``        (S, S) float32 unit-flux PSF image, drawn like the galaxies
``manifest.json``  spec, seeds, ``config_hash``, software versions, creation time and wall time

The noisy image at level ``sigma`` is ``clean + sigma * noise`` (:meth:`Dataset.images`),
so one dataset serves every rung of the noise grid. Consequently a given object's noise
*pattern* is the same at every level, only scaled; results at different levels are
therefore correlated (fine for curves versus noise, but not independent draws).

Which datasets exist, their sizes and stream ids: :mod:`shearbridge.sim.catalogue`; a loaded
one in memory (:class:`Dataset`): :mod:`shearbridge.sim.arrays`.
Randomness: dataset ``name`` of a profile uses the stream
``SeedSequence(entropy=profile.seed, spawn_key=(STREAM_ID[name],))``, whose child 0 draws
the population (in one vectorised call) and whose child 1 has one grandchild per object
(``spawn_key=(STREAM_ID[name], 1, i)``) for object ``i``'s noise field. Rendering is
deterministic (no photon shooting), so GalSim needs no seed. Hence: the same profile
and name give bit-identical arrays whatever the number of workers or the chunking;
different datasets (train, test, ...) never share objects or noise fields (unlike
ShearNet, where object ``i`` of the train and test sets shared its noise).
In the shear-test set object ``i``'s stream draws one field per orientation; the four stamps of
an orientation (``+g``/``-g`` x ``+n``/``-n``) hold it with sign ``noise_sign`` (antithetic
pairs; see :mod:`shearbridge.sim.stamps`).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import galsim
import numpy as np
from tqdm import tqdm

from shearbridge.version import __version__
from shearbridge.layout import Layout
from shearbridge.config import Profile, SimConfig, active_profile, to_dict
from shearbridge.errors import ConfigError, InputError, MissingFileError
from shearbridge.io import atomic_dir, read_json, write_json
from shearbridge.sim import stamps as simmod
from shearbridge.sim.arrays import TARGET_NAMES, Dataset, validate_stamps
from shearbridge.sim.catalogue import FORMAT_VERSION, get_spec, spec_hash
from shearbridge.sim.integrity import (
    FILES,
    check_arrays,
    check_content,
    check_fluxes,
    content_hashes,
)

__all__ = [
    "TARGET_NAMES",
    "CHUNK_OBJECTS",
    "Dataset",
    "generate_dataset",
    "load_dataset",
    "validate_stamps",
]

#: Objects per work unit (affects speed only, never the data).
CHUNK_OBJECTS = 128


# --------------------------------------------------------------------------- generation


def _render_chunk(
    sim: SimConfig, part: dict[str, np.ndarray], start: int, n: int, seed: int, stream_id: int
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Render ``n`` objects (labels ``part``, first object ``start``) and draw their noise.

    Runs in a worker process; returns ``(start, n, clean, noise)`` as float32 stamps.
    """
    per = simmod.SHEAR_TEST_STAMPS if sim.shear_test else 1
    size = sim.stamp_size_px
    rows = np.arange(per * n)
    if sim.shear_test:  # a -n stamp is its +n neighbour's image: render each image once
        rows = rows[np.asarray(part["noise_sign"])[: per * n] > 0]
    drawn = simmod.render_rows(sim, part, rows)
    bad = np.flatnonzero(~np.isfinite(drawn).all(axis=(1, 2)))
    if bad.size:
        raise RuntimeError(
            f"GalSim produced non-finite pixels in stamp {per * start + rows[bad[0]]}"
        )
    clean = np.repeat(drawn, 2, axis=0) if sim.shear_test else drawn
    fields = simmod.SHEAR_TEST_ORIENTATIONS if sim.shear_test else 1
    noise = np.empty((n, fields, size, size), np.float32)
    for j in range(n):
        ss = np.random.SeedSequence(entropy=seed, spawn_key=(stream_id, 1, start + j))
        noise[j] = np.random.default_rng(ss).standard_normal((fields, size, size), dtype=np.float32)
    if sim.shear_test:  # one field per orientation, for +g and -g, with sign noise_sign
        noise = np.repeat(noise, per // fields, axis=1).reshape(per * n, size, size)
        noise *= np.asarray(part["noise_sign"], np.float32)[: per * n, None, None]
    else:
        noise = noise[:, 0]
    return start, n, clean.astype(np.float32), noise


def _n_workers(workers: int | None) -> int:
    if workers is None:
        return max(1, len(os.sched_getaffinity(0)))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer or None, got {workers!r}")
    return workers


def _up_to_date(path: Path, expected_hash: str) -> bool:
    """The dataset exists, was made from the current spec, and its files still hold the bytes
    that were written (content hashes in the manifest)."""
    if not all((path / f).exists() for f in FILES):
        return False
    try:
        manifest = read_json(path / "manifest.json")
    except (OSError, ValueError):
        return False
    if manifest.get("config_hash") != expected_hash:
        return False
    stored = manifest.get("content_sha256")
    return stored is None or stored == content_hashes(path)


def generate_dataset(
    name: str,
    profile: Profile | None = None,
    workers: int | None = None,
    progress: bool = True,
    *,
    force: bool = False,
) -> Path:
    """Simulate dataset ``name`` of ``profile`` (default: the active one) and cache it.

    Work is split into chunks of :data:`CHUNK_OBJECTS` objects rendered by ``workers``
    processes (default: all CPUs this process may use; 1 renders in-process). The
    folder is written atomically: an interrupt or error leaves the previous state (or
    nothing) behind. Returns the dataset folder; if its manifest already has the
    current ``config_hash`` nothing is recomputed (unless ``force``).
    """
    profile = profile or active_profile()
    profile.validate()
    spec = get_spec(name, profile)
    spec.validate()
    n_workers = _n_workers(workers)
    out = Layout(profile).dataset(name)
    expected = spec_hash(spec, profile.seed)
    if not force and _up_to_date(out, expected):
        return out

    t0 = time.perf_counter()
    # child 0 of the dataset's stream: SeedSequence(seed, spawn_key=(sid,)).spawn(...)[0]
    pop_rng = np.random.default_rng(
        np.random.SeedSequence(entropy=profile.seed, spawn_key=(spec.stream_id, 0))
    )
    labels = simmod.draw_population(spec.sim, spec.n_objects, pop_rng)
    size, n_stamps = spec.sim.stamp_size_px, spec.n_stamps
    per = simmod.SHEAR_TEST_STAMPS if spec.sim.shear_test else 1
    starts = range(0, spec.n_objects, CHUNK_OBJECTS)
    bounds = [(a, min(a + CHUNK_OBJECTS, spec.n_objects)) for a in starts]

    with atomic_dir(out) as tmp:
        shape = (n_stamps, size, size)
        clean = np.lib.format.open_memmap(tmp / "clean.npy", "w+", np.float32, shape)
        noise = np.lib.format.open_memmap(tmp / "noise.npy", "w+", np.float32, shape)
        bar = _progress(n_stamps, f"simulate {profile.name}/{name}", disable=not progress)
        jobs = [({k: v[per * a : per * b] for k, v in labels.items()}, a, b - a) for a, b in bounds]
        try:
            for a, n, c, nz in _run_chunks(spec.sim, jobs, profile.seed, spec.stream_id, n_workers):
                clean[per * a : per * (a + n)] = c
                noise[per * a : per * (a + n)] = nz
                bar.update(per * n)
        finally:
            bar.close()
        clean.flush()
        noise.flush()
        del clean, noise
        np.save(tmp / "psf.npy", simmod.render_psf(spec.sim).astype(np.float32))
        with open(tmp / "labels.npz", "wb") as fh:
            np.savez(fh, **labels)
        wall = time.perf_counter() - t0
        write_json(
            tmp / "manifest.json",
            {
                "dataset": name,
                "profile": profile.name,
                "sim": to_dict(spec.sim),
                "n_objects": spec.n_objects,
                "n_stamps": n_stamps,
                "seed": profile.seed,
                "stream_id": spec.stream_id,
                "streams": {
                    "population": [spec.stream_id, 0],
                    "noise": [spec.stream_id, 1, "object"],
                },
                "gsparams": simmod.GSPARAMS_DICT,
                "format": FORMAT_VERSION,
                "config_hash": expected,
                "content_sha256": content_hashes(tmp),
                "versions": {
                    "galsim": galsim.__version__,
                    "numpy": np.__version__,
                    "shearbridge": __version__,
                },
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "workers": n_workers,
                "wall_time_s": round(wall, 3),
                "stamps_per_s": round(n_stamps / wall, 1),
            },
        )
    return out


def _run_chunks(
    sim: SimConfig,
    jobs: list[tuple[dict[str, np.ndarray], int, int]],
    seed: int,
    stream_id: int,
    n_workers: int,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield :func:`_render_chunk` results (in completion order) for ``(part, start, n)`` jobs."""
    if n_workers == 1 or len(jobs) == 1:
        for part, start, n in jobs:
            yield _render_chunk(sim, part, start, n, seed, stream_id)
        return
    # fork: works from unguarded scripts and ``python -m``; children only run GalSim/NumPy,
    # never JAX, so a parent that has started JAX's threads is not at risk from them.
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(n_workers, len(jobs)), mp_context=ctx) as pool:
        futures = [
            pool.submit(_render_chunk, sim, part, start, n, seed, stream_id)
            for part, start, n in jobs
        ]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()


def _progress(total: int, desc: str, *, disable: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="stamp", disable=disable, leave=False)


# --------------------------------------------------------------------------- loading


def _command(name: str, profile: Profile) -> str:
    return f"python -m shearbridge simulate --dataset {name} --profile {profile.name}"


def load_dataset(name: str, profile: Profile | None = None, mmap: bool = True) -> Dataset:
    """Load a cached dataset (read-only memory maps unless ``mmap=False``).

    Raises
    ------
    FileNotFoundError
        If it was never generated (the message names the path and the command).
    ValueError
        If it is stale (its ``config_hash`` differs from the current spec's),
        malformed (wrong shapes, non-finite values) or altered (a file's SHA-256 differs from
        its manifest's; checked once per process while the files stay untouched).
    """
    profile = profile or active_profile()
    spec = get_spec(name, profile)
    path = Layout(profile).dataset(name)
    missing = [f for f in FILES if not (path / f).exists()]
    if missing:
        raise MissingFileError(
            f"dataset {name!r} of profile {profile.name!r} is missing {path / missing[0]}; "
            f"generate it with: {_command(name, profile)}"
        )
    manifest = read_json(path / "manifest.json")
    expected = spec_hash(spec, profile.seed)
    if manifest.get("config_hash") != expected:
        raise InputError(
            f"dataset {path} is stale (config_hash {manifest.get('config_hash')} != {expected}); "
            f"regenerate it with: {_command(name, profile)}"
        )
    mode = "r" if mmap else None
    fix = f"regenerate it with: {_command(name, profile)} --force"
    arrays = {}
    for fname, fmode in (("clean.npy", mode), ("noise.npy", mode), ("psf.npy", None)):
        try:
            arrays[fname] = np.load(path / fname, mmap_mode=fmode)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(
                f"dataset {path}: {fname} is corrupt or truncated ({exc}); {fix}"
            ) from None
    clean, noise, psf = arrays["clean.npy"], arrays["noise.npy"], arrays["psf.npy"]
    try:
        with np.load(path / "labels.npz") as z:
            labels = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"dataset {path}: labels.npz is corrupt or truncated ({exc}); {fix}"
        ) from None
    check_arrays(path, spec, clean, noise, psf, labels)
    check_fluxes(path, clean, labels, fix)
    check_content(path, manifest, fix)  # a same-size edit: the manifest's SHA-256 no longer match
    return Dataset(
        name=name, clean=clean, noise=noise, labels=labels, psf=psf, sim=spec.sim, manifest=manifest
    )

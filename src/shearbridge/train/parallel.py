"""Scale-out: data-parallel training over several devices, and CPU cores for one process.

**Data parallelism** (:class:`DataParallel`) uses ``jax.sharding``: a
one-axis :class:`~jax.sharding.Mesh` over the devices, the batch (its index
vector, hence the gathered stamps) split along axis 0, parameters, optimiser
state and the training set replicated on every device. The training step is
the ordinary single-device function, compiled with these input and output
shardings; XLA's SPMD partitioner inserts the all-reduce of the loss and the
gradients. The arithmetic is the same up to the order of the batch sums, so
results agree with one device to float32 round-off (``tests/test_parallel.py``
checks this with two forced CPU devices). :func:`shearbridge.train.loop.train_and_evaluate`
uses it whenever more than one device is visible (``devices=`` or
``python -m shearbridge train --devices N`` chooses how many); on a multi-GPU
machine every GPU then takes ``batch_size / n_devices`` stamps per step.
On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` splits the
host into N devices, for tests; it does not make training faster. Across
processes (:mod:`shearbridge.train.distributed`) the mesh spans every process's
devices; each process places only its own devices' parts of an array (the host
copy is the same everywhere) and must use all global devices.

**CPU cores** (:func:`claim_cores`): on a small CPU machine two single-threaded
trainings side by side train more samples per second in total than one
two-threaded training (XLA's intra-op threads lose to stragglers on shared
cores). XLA sizes its thread pool from the process's CPU affinity mask, so a
process restricts itself to ``n`` cores before JAX starts, choosing cores no
other ``shearbridge`` process holds (one lock file per core, released when the
process exits). The Snakefile's ``train`` rule runs with ``threads: 1`` and
passes ``--threads 1``.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from shearbridge.errors import ParallelError

__all__ = [
    "DATA_AXIS",
    "DataParallel",
    "ParallelError",
    "choose_devices",
    "claim_cores",
    "data_parallel",
]

DATA_AXIS = "data"
_HELD_LOCKS: list[Any] = []  # open lock files of claimed cores (kept for the process lifetime)


def choose_devices(batch_size: int, requested: int | None = None) -> list[jax.Device]:
    """The devices one training uses: ``requested`` of them, or as many as divide the batch.

    Parameters
    ----------
    batch_size : int
        Global batch (stamps per step); every device takes an equal share.
    requested : int, optional
        Number of devices. ``None``: the largest count <= ``len(jax.devices())``
        that divides ``batch_size``.

    Raises
    ------
    ParallelError
        ``requested`` is < 1, exceeds the visible devices, or does not divide
        ``batch_size``.
    """
    available = jax.devices()
    if jax.process_count() > 1:  # a mesh over a prefix could leave a process without devices
        if requested not in (None, len(available)) or batch_size % len(available):
            raise ParallelError(
                f"{jax.process_count()} processes train on all {len(available)} devices, which "
                f"must divide batch_size ({batch_size}); got devices={requested}"
            )
        return list(available)
    if requested is None:
        n = max(d for d in range(1, len(available) + 1) if batch_size % d == 0)
    else:
        n = int(requested)
        if n < 1 or n > len(available):
            raise ParallelError(
                f"devices must lie in [1, {len(available)}] (visible: "
                f"{[str(d) for d in available]}), got {requested}"
            )
        if batch_size % n:
            raise ParallelError(f"batch_size ({batch_size}) is not divisible by devices ({n})")
    return list(available[:n])


@dataclass(frozen=True)
class DataParallel:
    """Shardings of a data-parallel step over ``mesh`` (one axis, :data:`DATA_AXIS`)."""

    mesh: Mesh

    @property
    def n_devices(self) -> int:
        return int(self.mesh.devices.size)

    @property
    def replicated(self) -> NamedSharding:
        """Every device holds the whole array (parameters, optimiser state, dataset)."""
        return NamedSharding(self.mesh, PartitionSpec())

    @property
    def batch(self) -> NamedSharding:
        """Axis 0 split over the devices (batch indices and weights)."""
        return NamedSharding(self.mesh, PartitionSpec(DATA_AXIS))

    def replicate(self, tree: Any) -> Any:
        """``tree`` with every leaf placed on all devices."""
        return self._place(tree, self.replicated)

    def shard_batch(self, x: Any) -> jax.Array:
        """``x`` split along axis 0 (its length must be a multiple of :attr:`n_devices`)."""
        if np.shape(x)[0] % self.n_devices:
            raise ParallelError(
                f"batch of {np.shape(x)[0]} cannot be split over {self.n_devices} devices"
            )
        return self._place(x, self.batch)

    def _place(self, tree: Any, sharding: NamedSharding) -> Any:
        """``jax.device_put``; over several processes each fills its own devices from its host copy
        (which must be the same in every process: no cross-process check or transfer)."""
        if sharding.is_fully_addressable:
            return jax.device_put(tree, sharding)

        def local(x: Any) -> jax.Array:
            host = np.asarray(jax.device_get(x))
            return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

        return jax.tree.map(local, tree)


def data_parallel(devices: list[jax.Device]) -> DataParallel | None:
    """A :class:`DataParallel` over ``devices``, or None for a single device (plain jit)."""
    if len(devices) < 1:
        raise ParallelError("data_parallel needs at least one device")
    if len(devices) == 1:
        return None
    return DataParallel(Mesh(np.asarray(devices), (DATA_AXIS,)))


def claim_cores(n: int, lock_dir: str | Path | None = None) -> list[int] | None:
    """Restrict this process to ``n`` CPU cores that other claimants do not hold.

    Call before JAX creates its CPU backend (before the first computation):
    XLA sizes its intra-op thread pool from the affinity mask. Each core has a
    lock file in ``lock_dir`` (default: a per-user folder under the system
    temporary directory); free cores are taken first, then, if fewer than
    ``n`` are free, the lowest-numbered held ones (sharing rather than
    failing). Locks are released when the process exits.

    Parameters
    ----------
    n : int
        Cores wanted (>= 1).
    lock_dir : path, optional
        Where the per-core lock files live.

    Returns
    -------
    list of int or None
        The cores now in the affinity mask, or None when nothing was changed
        (``n`` >= the cores already allowed, or no affinity support: not Linux).
    """
    if n < 1:
        raise ParallelError(f"threads must be >= 1, got {n}")
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if n >= len(allowed):
        return None
    folder = (
        Path(lock_dir)
        if lock_dir
        else Path(tempfile.gettempdir()) / f"shearbridge-cores-{os.getuid()}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    chosen: list[int] = []
    for cpu in allowed:
        if len(chosen) == n:
            break
        fh = open(folder / f"cpu{cpu}.lock", "a")  # noqa: SIM115 (held until exit)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        _HELD_LOCKS.append(fh)
        chosen.append(cpu)
    for cpu in allowed:  # not enough free cores: share the first ones
        if len(chosen) == n:
            break
        if cpu not in chosen:
            chosen.append(cpu)
    os.sched_setaffinity(0, chosen)
    return sorted(chosen)

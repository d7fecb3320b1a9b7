"""Training over processes and hosts: ``jax.distributed`` set up from the command line or launcher.

Each process (one per GPU or host) runs the same ``python -m shearbridge train ...``;
:func:`init_from_args` calls :func:`jax.distributed.initialize` before any other
JAX use, after which ``jax.devices()`` lists the devices of *all* processes and
the data-parallel mesh of :mod:`shearbridge.train.parallel` spans them: every
process holds the whole training set and computes the same batch order, feeds
its own devices their slice of each batch, and XLA all-reduces the gradients
across processes (on a CPU through gloo, ``jax_cpu_collectives_implementation``).
Results equal one-process training to float32 round-off
(``tests/test_distributed.py``). Only process 0 writes the run's files
(:func:`is_main_process`); the others compute.

Where the three numbers come from, first match wins, field by field:

1. the command line: ``--coordinator HOST:PORT --num-processes N --process-id I``;
2. the environment: ``SHEARBRIDGE_COORDINATOR`` or ``JAX_COORDINATOR_ADDRESS``,
   ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``;
3. SLURM, inside an ``srun`` step only (``SLURM_STEP_ID`` a step number; a batch
   script itself stays one process): ``SLURM_STEP_NUM_TASKS`` (or ``SLURM_NTASKS``),
   ``SLURM_PROCID``, and the step's first node with port
   ``SHEARBRIDGE_COORDINATOR_PORT`` (default: derived from ``SLURM_JOB_ID``, as
   JAX does) as the coordinator.

One process (no setting, or ``N = 1``) initialises nothing. This module imports
JAX only when it is used, so the command line can build its parser cheaply.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from shearbridge.errors import ParallelError

__all__ = [
    "COORDINATOR_ENV",
    "Cluster",
    "add_distributed_args",
    "agree_across_processes",
    "cluster_from",
    "init_from_args",
    "initialize",
    "is_main_process",
]

COORDINATOR_ENV = "SHEARBRIDGE_COORDINATOR"
PORT_ENV = "SHEARBRIDGE_COORDINATOR_PORT"


@dataclass(frozen=True)
class Cluster:
    """One process's place in a multi-process training: coordinator ``HOST:PORT``, count, own id."""

    coordinator: str
    num_processes: int
    process_id: int
    source: str  # where the settings came from (for messages)


def _int(value: str | int | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ParallelError(f"{name} must be an integer, got {value!r}") from None


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def slurm_first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[003-005,9],cpu1`` -> ``gpu003``."""
    m = re.match(r"\s*([^,\[\s]+)(?:\[([^\],\-]+))?", nodelist)
    if not m:
        raise ParallelError(f"cannot read the first host of the SLURM node list {nodelist!r}")
    return m.group(1) + (m.group(2) or "")


def _slurm(env: Mapping[str, str]) -> tuple[str | None, int | None, int | None]:
    """(coordinator, count, id) of an ``srun`` step, or Nones outside one."""
    step = env.get("SLURM_STEP_ID", "")
    if not step.isdigit() or int(step) >= 0xFFFFFFF0 or "SLURM_PROCID" not in env:
        return None, None, None  # not an srun step (the batch script's own step has a special id)
    count = _int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS"), "SLURM_NTASKS")
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
    coordinator = None
    if nodes:
        port = env.get(PORT_ENV) or str(
            (_int(env.get("SLURM_JOB_ID"), "SLURM_JOB_ID") or 0) % 4096 + 61440
        )
        coordinator = f"{slurm_first_host(nodes)}:{port}"
    return coordinator, count, _int(env["SLURM_PROCID"], "SLURM_PROCID")


def cluster_from(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Cluster | None:
    """The multi-process setting from the arguments, the environment or SLURM; None for one process.

    Raises
    ------
    ParallelError
        A count < 1, an id outside ``[0, count)``, an id without a count, a
        missing or malformed coordinator when the count is > 1, or a
        non-integer environment value: one message naming the setting.
    """
    env = os.environ if environ is None else environ
    s_coord, s_count, s_id = _slurm(env)
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    source = (
        "the command line"
        if any(given)
        else "the environment"
        if any(
            k in env
            for k in (
                COORDINATOR_ENV,
                "JAX_COORDINATOR_ADDRESS",
                "JAX_NUM_PROCESSES",
                "JAX_PROCESS_ID",
            )
        )
        else "SLURM"
        if s_count is not None
        else ""
    )
    coordinator = (
        coordinator or env.get(COORDINATOR_ENV) or env.get("JAX_COORDINATOR_ADDRESS") or s_coord
    )
    count = _first(num_processes, _int(env.get("JAX_NUM_PROCESSES"), "JAX_NUM_PROCESSES"), s_count)
    pid = _first(process_id, _int(env.get("JAX_PROCESS_ID"), "JAX_PROCESS_ID"), s_id)
    if count is None:
        if pid not in (None, 0):
            raise ParallelError(
                f"process id {pid} given without a number of processes "
                f"(--num-processes / JAX_NUM_PROCESSES; from {source})"
            )
        return None
    if count < 1:
        raise ParallelError(f"the number of processes must be >= 1, got {count} (from {source})")
    if count == 1 and pid in (None, 0):
        return None
    if pid is None or not 0 <= pid < count:
        raise ParallelError(
            f"process id must lie in [0, {count - 1}] for {count} processes, got {pid} "
            f"(from {source}; --process-id / JAX_PROCESS_ID / SLURM_PROCID)"
        )
    if not coordinator:
        raise ParallelError(
            f"{count} processes need a coordinator HOST:PORT (process 0's address): "
            f"--coordinator, ${COORDINATOR_ENV} or $JAX_COORDINATOR_ADDRESS"
        )
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ParallelError(
            f"coordinator must be HOST:PORT with a port in 1..65535, got {coordinator!r}"
        )
    return Cluster(coordinator, count, pid, source)


def initialize(cluster: Cluster | None, timeout_s: int = 300) -> Cluster | None:
    """``jax.distributed.initialize`` for ``cluster`` (nothing for None or when already done).

    Call before any JAX computation (or ``jax.devices()``). On a CPU the
    cross-process collectives are gloo's unless another implementation was
    configured (``JAX_CPU_COLLECTIVES_IMPLEMENTATION``).

    Raises
    ------
    ParallelError
        JAX's backend already started in this process.
    """
    if cluster is None:
        return None
    import jax

    if jax.distributed.is_initialized():
        return cluster
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            cluster.coordinator,
            cluster.num_processes,
            cluster.process_id,
            initialization_timeout=timeout_s,
        )
    except RuntimeError as exc:
        if "must be called before" in str(exc):
            raise ParallelError(
                "multi-process training must be set up before JAX is used in the "
                "process (call init_from_args first)"
            ) from exc
        raise
    print(
        f"shearbridge: process {jax.process_index()} of {jax.process_count()} "
        f"(coordinator {cluster.coordinator}, from {cluster.source}); devices: "
        f"{jax.local_device_count()} here, {jax.device_count()} in all",
        file=sys.stderr,
        flush=True,
    )
    return cluster


def add_distributed_args(parser: argparse.ArgumentParser) -> None:
    """``--coordinator``, ``--num-processes``, ``--process-id`` (default: environment, SLURM)."""
    parser.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help=f"process 0's address for multi-process training (default: ${COORDINATOR_ENV}, "
        "$JAX_COORDINATOR_ADDRESS, or the first node of an srun step)",
    )
    parser.add_argument(
        "--num-processes",
        type=int,
        metavar="N",
        help="processes training together, one per GPU or host (default: $JAX_NUM_PROCESSES, "
        "SLURM's task count in an srun step, else 1)",
    )
    parser.add_argument(
        "--process-id",
        type=int,
        metavar="I",
        help="this process's id in [0, N) (default: $JAX_PROCESS_ID or $SLURM_PROCID)",
    )


def init_from_args(args: argparse.Namespace) -> Cluster | None:
    """Resolve the setting (:func:`cluster_from`) from parsed ``args`` and :func:`initialize` it."""
    return initialize(
        cluster_from(
            getattr(args, "coordinator", None),
            getattr(args, "num_processes", None),
            getattr(args, "process_id", None),
        )
    )


def is_main_process() -> bool:
    """True in process 0 (the one that writes files), and always in a one-process run."""
    import jax

    return jax.process_index() == 0


def agree_across_processes(epoch: int, run_hash: str) -> None:
    """Check every process starts from the same epoch of the same run (a no-op for one process).

    Raises
    ------
    ParallelError
        The processes disagree: their ``workdir`` is not one shared folder, or
        their data or configuration differ.
    """
    import jax

    if jax.process_count() == 1:
        return
    import numpy as np
    from jax.experimental import multihost_utils

    mine = np.array([epoch, zlib.crc32(run_hash.encode()) % 2**31], np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, 2)
    if not (every == every[0]).all():
        raise ParallelError(
            f"the {len(every)} processes disagree on the run (epoch, run-hash checksum per "
            f"process: {every.tolist()}): the workdir must be one folder all processes share, "
            "with the same data and configuration on every host"
        )

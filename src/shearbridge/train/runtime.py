"""Process settings for fast CPU training: XLA flags, compiler options, glibc malloc.

Measured on the 2-core AMD EPYC (AVX2) build machine with jaxlib 0.10.2; the
numbers, the method and what did *not* help are in ``/work/notes/perf_report.md``
and ``tools/perf/train_step_bench.py``. One ShearNet ``EnhancedGalaxyNN``
training step (forward, backward, AdamW) is limited by memory traffic and
library choice, not arithmetic. What helped, in order:

1. **Page faults.** XLA allocates its temporaries afresh on every call; glibc
   serves large blocks with fresh 4 KiB pages from the kernel, and on this VM
   first-touch faults cost more than the arithmetic. Transparent huge pages for
   malloc (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, set before the process
   starts) gave ~1.3-1.5x; see :func:`recommended_env`, :func:`reexec_with_recommended_env`.
2. **YNNPACK convolutions.** jaxlib 0.10.2 hands convolutions to YNNPACK by
   default; its kernel-gradient convolution (a 26x26 "window" contracting over
   the batch) is slow, Eigen's is faster: ~1.3-1.4x per step with
   :func:`recommended_xla_flags` or :func:`recommended_compiler_options`.
3. **One thread per process.** Two single-threaded trainings (one per core)
   got more samples/s in total than one two-threaded training.

The layers that speed up *inference* (convolutions as matrix products) are in
:mod:`shearbridge.models.fastconv`. This module imports neither jax nor flax,
so a command-line entry point can restart itself with :func:`recommended_env`
before any heavy import.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping

__all__ = [
    "REEXEC_GUARD",
    "configure_malloc",
    "recommended_compiler_options",
    "recommended_env",
    "recommended_xla_flags",
    "reexec_with_recommended_env",
]

# YNNPACK convolutions off (Eigen's are faster for the kernel gradient here); YNNPACK
# keeps the matrix products (~1.6x faster than Eigen's) and its reduce fusions
# (turning those off too was slower).
_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)
_COMPILER_OPTIONS = {
    # the same setting in the enum spelling that ``Lowered.compile(compiler_options=...)``
    # expects: jaxlib 0.10.2's default set (INDIVIDUAL_DOT, INDIVIDUAL_CONVOLUTION,
    # REDUCE; found by comparing compiled HLO) minus INDIVIDUAL_CONVOLUTION
    "xla_cpu_experimental_ynn_fusion_type": (
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
    ),
}
_GIB = 1 << 30


def recommended_xla_flags(existing: str | None = None) -> str:
    """``XLA_FLAGS`` value for fast CPU training: ``existing`` plus the flags it lacks.

    Set it in ``os.environ["XLA_FLAGS"]`` before jax creates its CPU backend
    (before the first computation; importing jax is fine). The flags change
    which library runs a convolution, not the arithmetic: results agree with
    the default to float32 round-off.
    """
    parts = (existing or "").split()
    have = {p.split("=")[0] for p in parts}
    parts += [f for f in _XLA_FLAGS if f.split("=")[0] not in have]
    return " ".join(parts)


def recommended_compiler_options() -> dict[str, str]:
    """The :func:`recommended_xla_flags` setting for one compilation only.

    Use as ``jax.jit(f, compiler_options=...)`` or
    ``jax.jit(f).lower(*args).compile(compiler_options=...)``; it needs no
    environment variable and overrides ``XLA_FLAGS`` for that executable.
    """
    return dict(_COMPILER_OPTIONS)


def recommended_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables for a fast training *process* (set before Python starts).

    Returns ``XLA_FLAGS`` (see :func:`recommended_xla_flags`) and glibc malloc
    settings: transparent huge pages for malloc
    (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``; the kernel's THP mode must be
    ``madvise`` or ``always``), which is what removes most of the page-fault
    cost, and freed memory kept in the heap (``MALLOC_MMAP_MAX_=0``, a 64 GiB
    trim threshold) so XLA's large temporaries are reused rather than faulted
    in again (no measurable gain on top of huge pages, kept as cheap insurance).
    Variables already present in ``environ`` (default ``os.environ``) are kept;
    ``XLA_FLAGS`` is extended, never overwritten. Memory freed by the process
    is not returned to the OS until it exits: resident size stays at its peak.
    """
    env = os.environ if environ is None else environ
    out = {"XLA_FLAGS": recommended_xla_flags(env.get("XLA_FLAGS"))}
    defaults = {
        "MALLOC_MMAP_MAX_": "0",
        "MALLOC_TRIM_THRESHOLD_": str(64 * _GIB),
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
    }
    for key, value in defaults.items():
        if key not in env:
            out[key] = value
    return out


REEXEC_GUARD = "SHEARBRIDGE_FAST_ENV"


def reexec_with_recommended_env() -> None:
    """Restart this Python process with :func:`recommended_env` if any of it is missing.

    For command-line entry points only (``python -m shearbridge train ...``):
    glibc reads its malloc tunables at start-up, so they cannot be switched on
    later. Replaces the process via ``os.execve`` with the same interpreter and
    command line (``sys.orig_argv``); returns normally when nothing is missing,
    when already restarted once (guard variable ``SHEARBRIDGE_FAST_ENV``), or
    off Linux. Call it first thing, before any work is done.
    """
    if not sys.platform.startswith("linux") or os.environ.get(REEXEC_GUARD):
        return
    wanted = recommended_env()
    if all(os.environ.get(k) == v for k, v in wanted.items()):
        return
    env = {**os.environ, **wanted, REEXEC_GUARD: "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), env)


def configure_malloc() -> bool:
    """Apply the heap part of :func:`recommended_env` to the running process (glibc only).

    Calls ``mallopt(M_MMAP_MAX, 0)`` and ``mallopt(M_TRIM_THRESHOLD, 2 GiB - 1)``
    so that later large allocations come from, and return to, the heap. Measured:
    no speed-up on its own; huge pages, which it cannot switch on after start-up,
    are what matter (use :func:`recommended_env` or
    :func:`reexec_with_recommended_env`). Returns False (and changes nothing)
    where glibc's ``mallopt`` is absent.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_max = -1, -4  # glibc <malloc.h>
    ok = mallopt(m_mmap_max, 0) == 1
    # M_TRIM_THRESHOLD takes an int: cap at the largest one (2 GiB - 1)
    ok = (mallopt(m_trim_threshold, 2**31 - 1) == 1) and ok
    return ok

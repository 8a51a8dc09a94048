"""Process-level settings that the hot paths depend on.

glibc's allocator hands blocks above 128 KiB back to the kernel as soon as they are freed (its
"trim" and "mmap" thresholds), and the next allocation of the same size takes page faults to get
them again. A circuit solve allocates and frees the same (edges × batch) temporaries hundreds of
times: on the 2-D flows that was 40,000–60,000 page faults per adjoint training step, a third of
its time. `keep_freed_memory` raises both thresholds once per process so that freed blocks
stay in the heap for reuse (the process keeps up to 256 MiB of freed memory instead of returning
it). It changes the whole process, so a library does not do it on import: the ``kirchhoffnet`` command
applies it at start, and Python users opt in by calling it (the benchmarks do). ``KIRCHHOFFNET_MALLOC=default``
leaves the allocator alone even then; other C libraries, where ``mallopt`` does not exist, are left alone too.

Threads are the other process-level setting. On a busy 2-core machine, torch's OpenMP threads wait on
each other at every barrier of every small operation: two threads made a CNF training step 6-25x slower
than one, and the fused edge kernel's tiles gained nothing on average from a second thread
(benchmarks/jax_comparison.py). So the command runs on one thread unless asked (`command_threads`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

import torch

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # the largest value glibc accepts on 64-bit systems
_TRIM_THRESHOLD = 256 << 20

MAX_THREADS = 1024
"""Most CPU threads a run may ask for: a policy above any machine's cores, far below what
torch's int32 thread count and the OpenMP runtime (which would try to start them all) break on."""

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds once per process; whether they are raised."""
    global _applied
    if _applied is None:
        _applied = False
        if os.environ.get("KIRCHHOFFNET_MALLOC", "").lower() != "default" and platform.libc_ver()[0] == "glibc":
            libc = ctypes.CDLL(ctypes.util.find_library("c"))
            _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
            )
    return _applied


def command_threads(requested: int | None) -> None:
    """The ``kirchhoffnet`` command's thread policy: torch (and with it the fused edge kernel, which follows
    torch's count) on ``requested`` threads; without a request, on one, unless OMP_NUM_THREADS is set (then
    the user's count stands). Not for library code: it changes the whole process."""
    if requested is not None:
        torch.set_num_threads(requested)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)

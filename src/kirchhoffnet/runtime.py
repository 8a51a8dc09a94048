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
each other at every barrier of every small operation, and two threads made a CNF training step 10-20x
slower than one (benchmarks/jax_comparison.py); the fused edge kernel's batch tiles are long,
independent tasks that lose nothing that way. So the kernel's thread count is its own
(`set_kernel_threads`), following torch's unless set; the command sets both (see ``kirchhoffnet --threads``).
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
_kernel_threads: int | None = None


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


def set_kernel_threads(count: int | None) -> int | None:
    """Run the fused CPU edge kernel's batch tiles on ``count`` threads (``None``: torch's count); the
    setting it replaces, to put back."""
    global _kernel_threads
    previous, _kernel_threads = _kernel_threads, count
    return previous


def kernel_threads() -> int:
    """The fused CPU edge kernel's thread count: the one set, else torch's."""
    return _kernel_threads if _kernel_threads is not None else torch.get_num_threads()


def command_threads(requested: int | None) -> None:
    """The ``kirchhoffnet`` command's thread policy: ``requested`` threads for torch and the fused kernel
    alike; without a request, torch on one thread and the fused kernel on every core the process may use,
    unless OMP_NUM_THREADS is set (then the user's count stands, for both). Not for library code: it
    changes the whole process."""
    if requested is not None:
        torch.set_num_threads(requested)
        set_kernel_threads(requested)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
        set_kernel_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # the largest value glibc accepts on 64-bit systems
_TRIM_THRESHOLD = 256 << 20

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

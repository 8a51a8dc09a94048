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

Threads are the other process-level setting, and two kinds run here: torch's intra-op (OpenMP) threads and the
Python threads on which the numba kernels (`kirchhoffnet.circuit._fused`) run their tiles. On a busy 2-core
machine torch's OpenMP threads wait on each other at every barrier of every small operation, and its idle
workers spin on the core another thread needs: a second torch thread made a CNF training step 6-25x slower and
the torch ``affine`` right-hand side 50 -> 1,314 ms. The kernels' threads take their work from a shared queue
(the calling thread does the pieces a helper never starts, and re-runs one a helper holds for too long), so a
second one costs little where it gets no core. Hence `use_threads`: "N threads" means the kernels on N, torch on 1,
for the command (`command_threads`), a training config's ``threads`` (`threads`) and the benchmarks alike.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from kirchhoffnet.errors import ConfigError

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # the largest value glibc accepts on 64-bit systems
_TRIM_THRESHOLD = 256 << 20

LIMIT_ENV = "KIRCHHOFFNET_MEMORY_GB"
"""Environment variable overriding the memory limit (in GB, 10^9 bytes); default: what is available."""
GB = 1e9

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


def memory_limit() -> float | None:
    """Bytes a run may use: ``$KIRCHHOFFNET_MEMORY_GB``, else MemAvailable from /proc/meminfo, else None."""
    text = os.environ.get(LIMIT_ENV)
    if text is not None:
        try:
            limit = float(text)
        except ValueError:
            limit = float("nan")
        if not limit > 0 or limit == float("inf"):
            raise ConfigError(f"{LIMIT_ENV} must be a positive number of GB, got {text!r}")
        return limit * GB
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None  # not Linux: no check rather than a guess


def require_memory(needed: float, key: str, what: str, detail: str = "") -> None:
    """Refuse work whose ``needed`` bytes certainly exceed `memory_limit`, naming the ``key`` that sets it: on
    Linux such an allocation is granted and the kernel kills the process as its pages are touched.
    ``detail`` (the estimate's terms and the remedy) follows the figures."""
    limit = memory_limit()
    if limit is not None and needed > limit:
        raise ConfigError(
            f"{key}: the {what} needs at least {needed / GB:.3g} GB but {limit / GB:.3g} GB are available"
            f"{' ' + detail if detail else ''}, or set {LIMIT_ENV} if the estimate is wrong"
        )


_kernel_threads: int | None = None


def set_kernel_threads(threads: int | None) -> None:
    """Run the numba kernels' tiles on ``threads`` Python threads, or (``None``, the default) on as many as torch
    has. Torch's own count is left alone: use `use_threads` for the policy that sets both."""
    global _kernel_threads
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"kernel threads must be between 1 and {MAX_THREADS}, got {threads}")
    _kernel_threads = threads


def kernel_threads() -> int:
    """The threads the numba kernels run on (see `set_kernel_threads`)."""
    return torch.get_num_threads() if _kernel_threads is None else _kernel_threads


def use_threads(count: int) -> None:
    """Run on ``count`` CPU threads in the way that is never slower than one: the numba kernels on ``count``
    Python threads, torch on one intra-op thread (its OpenMP barriers made a second thread 6-25x slower on a
    loaded 2-core machine, see the module docstring; the large-circuit work that threads can speed up is the
    kernels'). Changes the whole process: for the command, configs and benchmarks, never on import."""
    if not 1 <= count <= MAX_THREADS:
        raise ConfigError(f"threads must be between 1 and {MAX_THREADS}, got {count}")
    torch.set_num_threads(1)
    set_kernel_threads(count)


@contextmanager
def threads(count: int | None) -> Iterator[None]:
    """`use_threads` for the block (nothing changes when ``count`` is None), then both counts as they were."""
    previous = (torch.get_num_threads(), _kernel_threads)
    if count is not None:
        use_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous[0])
        set_kernel_threads(previous[1])


def command_threads(requested: int | None) -> None:
    """The ``kirchhoffnet`` command's thread policy: `use_threads` of ``requested``; without a request, of one,
    unless OMP_NUM_THREADS is set (then the user's torch count stands and the kernels follow it)."""
    if requested is not None:
        use_threads(requested)
    elif "OMP_NUM_THREADS" not in os.environ:
        use_threads(1)

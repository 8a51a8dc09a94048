"""Timing helpers shared by the benchmarks: interleaved repeats, min and median, one table."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from kirchhoffnet.runtime import keep_freed_memory, kernel_threads

keep_freed_memory()  # measure the library as the `kirchhoffnet` command runs it (see kirchhoffnet.runtime)


def machine() -> str:
    """The header every benchmark prints: the machine, torch's and the numba kernels' threads, the cores and the load
    at this moment (on a shared machine the load says how much the figures below can be trusted)."""
    threads = f"{torch.get_num_threads()} torch / {kernel_threads()} kernel threads"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__}, {threads}, "
        f"{os.cpu_count()} cores, load average {load}"
    ).replace("  ", " ")


def interleaved(
    candidates: dict[str, Callable[[], object]],
    repeats: int = 5,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Run each candidate ``repeats`` times, alternating between them, and return seconds per run.

    Interleaving makes a noisy, shared machine hurt every candidate alike, so their ratio stays
    meaningful even when the absolute times drift. ``clock``: wall time by default; ``time.process_time``
    counts only this process's CPU time, which other jobs on an oversubscribed machine disturb far less
    (for single-threaded runs, where the two agree on an idle machine).
    """
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return times


def summary(times: dict[str, list[float]], baseline: str, unit: str = "ms", per: float = 1.0) -> str:
    """A table row per candidate: min and median time (per ``per`` items) and speed-up vs ``baseline``."""
    scale = {"ms": 1e3, "s": 1.0}[unit]
    base = min(times[baseline])
    lines = [f"{'':28s} {'min ' + unit:>12s} {'median ' + unit:>12s} {'speed-up':>9s}"]
    for name, values in times.items():
        lines.append(
            f"{name:28s} {min(values) * scale / per:12.2f} {statistics.median(values) * scale / per:12.2f} "
            f"{base / min(values):8.1f}x"
        )
    return "\n".join(lines)


BYTES_PER_EDGE_COLUMN = 16
"""What a fused right-hand side must move per edge and batch column, float32: the two terminal voltages
read and the two node sums written (the floor the issue's cache limit is stated with)."""


class Limits(NamedTuple):
    """What this machine can do at torch's current thread count, measured in the same run as a benchmark."""

    memory_gbs: float  # copying a block far larger than the caches: bytes read + written per second
    cache_gbs: float  # the same for a block that stays in the core's L2 cache
    matmul_gflops: float  # float32 (1024 × 1024) @ (1024 × 1024)

    def floor_ms(self, edges: int, batch: int) -> float:
        """The in-cache floor of one right-hand side: `BYTES_PER_EDGE_COLUMN` per edge and column at the
        in-cache copy rate."""
        return edges * batch * BYTES_PER_EDGE_COLUMN / (self.cache_gbs * 1e9) * 1e3

    def line(self) -> str:
        return (
            f"machine limits ({torch.get_num_threads()} thread(s)): memory copy {self.memory_gbs:.1f} GB/s, "
            f"in-cache copy {self.cache_gbs:.1f} GB/s, matmul {self.matmul_gflops:.1f} GFLOP/s"
        )


def machine_limits(repeats: int = 5, clock: Callable[[], float] = time.perf_counter) -> Limits:
    """Best of ``repeats`` for each probe: the machine's ceiling, which a busy machine only lowers. ``clock``: the one
    the benchmark times with (CPU time at one thread keeps the ceiling where other jobs would lower it)."""

    def best_rate(fn: Callable[[], object], work: float, inner: int) -> float:
        fn()
        best = float("inf")
        for _ in range(repeats):
            start = clock()
            for _ in range(inner):
                fn()
            best = min(best, (clock() - start) / inner)
        return work / best

    # NumPy's copy: torch's single-threaded copy_ measured 2-3x slower here, so it would understate the limit.
    big, small = np.random.rand(64 << 20).astype(np.float32), np.random.rand(32 << 10).astype(np.float32)
    big_copy, small_copy = np.empty_like(big), np.empty_like(small)  # 256 MiB and 128 KiB each
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    return Limits(
        memory_gbs=best_rate(lambda: np.copyto(big_copy, big), 2 * big.nbytes / 1e9, 2),
        cache_gbs=best_rate(lambda: np.copyto(small_copy, small), 2 * small.nbytes / 1e9, 1000),
        matmul_gflops=best_rate(lambda: a @ b, 2 * 1024**3 / 1e9, 5),
    )

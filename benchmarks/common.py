"""Timing helpers shared by the benchmarks: interleaved repeats, min and median, one table."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch

from kirchhoffnet.runtime import keep_freed_memory

keep_freed_memory()  # measure the library as the `kirchhoffnet` command runs it (see kirchhoffnet.runtime)


def machine() -> str:
    threads = torch.get_num_threads()
    return f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__}, {threads} threads".strip()


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

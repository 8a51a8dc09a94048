"""Load: ``kirchhoffnet sample RUN_DIR -n N`` streams through the solver in batches, in bounded memory.

Peak resident memory (``ru_maxrss`` of the child, measured by a wrapper process) is compared between
a small N and a large one: the growth must stay within a few times the size of the samples
themselves (8 bytes per 2-D float32 sample), never the solver's working set times N. The 10^6-sample
run is ``slow``: ``PYTHONPATH=src python -m pytest -m slow tests/reliability/test_load.py -s``.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kirchhoffnet.training import train

from ..training.helpers import tiny_flow
from .crash import environment

BYTES_PER_SAMPLE = 64  # samples (8 B), base draws (8 B), the batch list and its concatenation: ~6x, with room
SLACK_MB = 30.0  # allocator and import noise between two processes


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train(
        tiny_flow("train.epochs=1", "train.steps_per_epoch=2"), tmp_path_factory.mktemp("load") / "run"
    ).run_dir


def peak_rss_mb(run_dir, n: int, out) -> float:
    """Peak RSS (MB) of ``kirchhoffnet sample RUN_DIR -n n`` in a child process."""
    command = [sys.executable, "-m", "kirchhoffnet", "sample", str(run_dir), "-n", str(n), "--out", str(out)]
    wrapper = (
        "import resource, subprocess, sys\n"
        f"done = subprocess.run({command!r})\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); sys.exit(done.returncode)"
    )
    result = subprocess.run([sys.executable, "-c", wrapper], env=environment(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert np.load(out / "samples.npy", mmap_mode="r").shape == (n, 2)
    return float(result.stdout.strip().splitlines()[-1])


def check_bounded(run_dir, tmp_path, n: int) -> tuple[float, float]:
    small = peak_rss_mb(run_dir, 1_000, tmp_path / "small")
    large = peak_rss_mb(run_dir, n, tmp_path / "large")
    print(f"\npeak RSS: {small:.0f} MB for 1,000 samples, {large:.0f} MB for {n:,} (+{large - small:.0f} MB)")
    assert large - small <= BYTES_PER_SAMPLE * n / 2**20 + SLACK_MB
    return small, large


def test_sampling_100k_points_grows_memory_only_by_the_samples(run_dir, tmp_path):
    check_bounded(run_dir, tmp_path, 100_000)


@pytest.mark.slow
def test_sampling_a_million_points_stays_bounded(run_dir, tmp_path):
    check_bounded(run_dir, tmp_path, 1_000_000)

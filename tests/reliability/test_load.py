"""Load: ``kirchhoffnet sample RUN_DIR -n N`` streams batch by batch from the solver into
``samples.npy``, in bounded memory.

Peak resident memory (``ru_maxrss`` of the child, measured by a wrapper process) is compared between
a small N and a large one: the growth must stay far below the size of the samples themselves
(N × D × 4 bytes), which is what holding them in memory would cost. The 10^6-sample run is ``slow``:
``PYTHONPATH=src python -m pytest -m slow tests/reliability/test_load.py -s``; the 784-d MNIST run
(also ``slow``, about a minute) takes its size from ``KIRCHHOFFNET_LOAD_IMAGES`` (default 20,000).
The default run has the fast check of the writer itself in ``tests/io/test_atomic.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kirchhoffnet.config import parse_config
from kirchhoffnet.training import train

from ..conftest import MNIST_SUBSET
from ..training.helpers import tiny_flow
from .crash import environment

SLACK_MB = 30.0  # allocator and import noise between two processes, and one batch in flight


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train(
        tiny_flow("train.epochs=1", "train.steps_per_epoch=2"), tmp_path_factory.mktemp("load") / "run"
    ).run_dir


@pytest.fixture(scope="module")
def mnist_run_dir(tmp_path_factory):
    """A 784-d mnist_gen flow (a 3×3 local circuit on the full 28×28 image) after two training steps."""
    topology = {"name": "mix_connect", "channels": 1, "height": 28, "width": 28, "kernel_size": 3}
    data = {"name": "mnist", "root": str(MNIST_SUBSET), "split": "test", "train_subset": 200, "val_size": 50}
    config = {
        "task": "mnist_gen",
        "threads": 1,
        "data": {**data, "test_subset": 50},
        "circuit": {"topology": {**topology, "hidden_nodes": 0, "repeat": [1, 1]}, "device": "ShiftTanh1"},
        "solver": {"rtol": 1e-2, "atol": 1e-2, "gradient": "backprop"},
        "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 50, "lr": 1e-3, "eval_batch_size": 500},
        "grid": 3,
    }
    return train(parse_config(config), tmp_path_factory.mktemp("load-mnist") / "run", progress=False).run_dir


def peak_rss_mb(run_dir, n: int, out: Path, dim: int = 2) -> float:
    """Peak RSS (MB) of ``kirchhoffnet sample RUN_DIR -n n`` in a child process."""
    command = [sys.executable, "-m", "kirchhoffnet", "sample", str(run_dir), "-n", str(n), "--out", str(out)]
    wrapper = (
        "import resource, subprocess, sys\n"
        f"done = subprocess.run({command!r})\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); sys.exit(done.returncode)"
    )
    result = subprocess.run([sys.executable, "-c", wrapper], env=environment(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert np.load(out / "samples.npy", mmap_mode="r").shape == (n, dim)
    return float(result.stdout.strip().splitlines()[-1])


def check_bounded(run_dir, tmp_path, n: int, dim: int = 2) -> tuple[float, float]:
    """Peak RSS for 1,000 and for ``n`` samples; the growth must be under a tenth of the samples' size."""
    small = peak_rss_mb(run_dir, 1_000, tmp_path / "small", dim)
    large = peak_rss_mb(run_dir, n, tmp_path / "large", dim)
    size_mb = n * dim * 4 / 2**20
    print(
        f"\npeak RSS: {small:.0f} MB for 1,000 samples, {large:.0f} MB for {n:,} (+{large - small:.0f} MB; "
        f"the samples are {size_mb:.0f} MB)"
    )
    assert large - small <= size_mb / 10 + SLACK_MB
    return small, large


def test_sampling_100k_points_grows_memory_only_by_the_samples(run_dir, tmp_path):
    check_bounded(run_dir, tmp_path, 100_000)


@pytest.mark.slow
def test_sampling_a_million_points_stays_bounded(run_dir, tmp_path):
    check_bounded(run_dir, tmp_path, 1_000_000)


@pytest.mark.slow
def test_sampling_784_dimensional_images_streams_them_to_disk(mnist_run_dir, tmp_path):
    check_bounded(mnist_run_dir, tmp_path, int(os.environ.get("KIRCHHOFFNET_LOAD_IMAGES", "20000")), dim=784)

"""Shared fixtures: seeds, the shipped reference checkpoints and MNIST subset, tiny circuits."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import pickle
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from scipy.io import savemat

import kirchhoffnet as kn
from kirchhoffnet import _progress, runtime
from kirchhoffnet.runtime import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]
ORIGINAL = REPO / "data" / "original"  # the original authors' two results, shipped in the repository
MNIST_SUBSET = REPO / "data" / "mnist-test-subset"  # the first 1,000 MNIST test images, shipped likewise


def write_idx(path: Path, array: np.ndarray) -> None:
    """``array`` as an IDX file of unsigned bytes, gzipped (the MNIST family's format)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def write_cifar10(root: Path, images: np.ndarray, labels: list[int], files: tuple[str, ...]) -> Path:
    """CIFAR-10's python batches (pickled dicts of (N, 3072) uint8 rows, R, G, B planes) under
    ``root/cifar-10-batches-py``, each of ``files`` holding ``images`` and ``labels``; returns ``root``."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for file in files:
        (base / file).write_bytes(pickle.dumps({b"data": images.astype(np.uint8), b"labels": [int(v) for v in labels]}))
    return root


def write_svhn(root: Path, images: np.ndarray, labels: np.ndarray, files: tuple[str, ...]) -> Path:
    """SVHN's cropped-digit .mat files (X as H, W, C, N uint8; y in 1..10, 10 for digit 0); returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for file in files:
        savemat(root / file, {"X": images.astype(np.uint8), "y": labels.reshape(-1, 1)})
    return root


def pytest_configure(config: pytest.Config) -> None:
    """The suite runs torch single-threaded: its tensors are small, and with two OpenMP threads a
    test slowed down up to 100× whenever another process held a core (see ``one_torch_thread``).
    ``KIRCHHOFFNET_TEST_THREADS`` overrides it. The allocator is set as the ``kirchhoffnet`` command
    sets it (:func:`kirchhoffnet.runtime.keep_freed_memory`), so the suite runs the library as users do."""
    torch.set_num_threads(int(os.environ.get("KIRCHHOFFNET_TEST_THREADS", "1")))
    keep_freed_memory()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``needs_ngspice`` skip, saying how to install it, when ngspice is not on PATH."""
    if shutil.which(os.environ.get("KIRCHHOFFNET_NGSPICE", "ngspice")) is not None:
        return
    skip = pytest.mark.skip(reason="ngspice is not installed; apt-get install -y ngspice")
    for item in items:
        if "needs_ngspice" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def fresh_progress_clock(monkeypatch) -> None:
    """Every test's commands start as a fresh process does, with no progress line due: otherwise a one-line error
    test run 30 s after the last bar of an earlier test (the default interval) also gets a progress line."""
    monkeypatch.setattr(_progress, "_last_line", time.time())


@pytest.fixture(autouse=True)
def seed() -> int:
    """Every test starts from the same RNG state."""
    torch.manual_seed(1234)
    return 1234


@pytest.fixture
def one_torch_thread():
    """Run torch single-threaded, for tests of tiny circuits that run beside external processes.

    On the shared 2-core machine, two OpenMP threads per small kernel wait on each other at every
    barrier whenever another process holds a core; this made a 0.2 s solve take 20 s.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def restore_threads():
    """For tests of the thread policy, which changes process-wide settings: both counts put back afterwards."""
    before = (torch.get_num_threads(), runtime._kernel_threads)
    yield
    torch.set_num_threads(before[0])
    runtime.set_kernel_threads(before[1])


@pytest.fixture
def original_dir():
    """Path to one of the original code's results shipped in ``data/original/NAME``; a missing one fails
    the test (the clone is incomplete) rather than skipping it."""

    def locate(name: str) -> Path:
        path = ORIGINAL / name
        assert (path / "model.pth").is_file(), f"{path / 'model.pth'} is missing: the repository is incomplete"
        return path

    return locate


def small_circuit(
    device: str = "ShiftTanh2", num_nodes: int = 4, slices: int = 2, repeat=(2, 1), **kwargs
) -> kn.Circuit:
    """A fully connected circuit with non-trivial random parameters (gains of order 1)."""
    edges = kn.topology.fully_connect(num_nodes, repeat)
    circuit = kn.Circuit(edges, device, slices=slices, init="gauss", **kwargs)
    with torch.no_grad():
        for piece in circuit.slices:
            piece.params.normal_(0.0, 0.7)
    return circuit


def check_table_derivatives(
    device: kn.devices.TransistorTable,
    u: torch.Tensor,
    slope_tol: tuple[float, float],
    curvature_tol: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """σ' and σ'' of a table (computed from σ's value) against central differences at the gate voltages ``u`` whose
    stencils stay inside one spline piece; tolerances as (rtol, atol). Returns those ``u``, σ(u) and σ'(u)."""
    step, h = device.step_v, 1e-6
    u = u[((u / step - torch.round(u / step)).abs() * step > 10 * h)]  # central stencils inside one piece
    sigma = lambda x: device.activation(x.clone(), inplace=True)  # noqa: E731
    out = sigma(u)
    slope = device.slope(out)
    rtol, atol = slope_tol
    torch.testing.assert_close(slope, (sigma(u + h) - sigma(u - h)) / (2 * h), rtol=rtol, atol=atol)
    fd_curvature = (device.slope(sigma(u + h)) - device.slope(sigma(u - h))) / (2 * h)
    rtol, atol = curvature_tol
    torch.testing.assert_close(device.curvature(out, slope), fd_curvature, rtol=rtol, atol=atol)
    return u, out, slope


def table_circuit(
    device: kn.devices.TransistorTable,
    edges: torch.Tensor,
    times: tuple[float, ...],
    *,
    signed: bool,
    bias_v: tuple[float, float],
) -> kn.Circuit:
    """Conducting transistors of moderate width (0.25–1 reference widths, random polarity if ``signed``) with gate
    biases uniform in ``bias_v``, one slice per interval of ``times``: a table network ngspice can follow."""
    circuit = kn.Circuit(edges, device, slices=len(times) - 1, times=times)
    low, high = bias_v
    with torch.no_grad():
        for piece in circuit.slices:
            sign = torch.where(torch.rand(piece.num_edges) < 0.5, -1.0, 1.0) if signed else 1.0
            piece.params[0] = (torch.rand(piece.num_edges) * 0.75 + 0.25) * sign
            piece.params[1] = torch.rand(piece.num_edges) * (high - low) + low
    return circuit


def write_finished_run(run: Path, seed: int, mse: float, **fields: object) -> None:
    """A new run folder ``run`` holding a finished regression run's metrics.json, as the experiments' collectors
    read it (``fields`` add to or replace its entries)."""
    run.mkdir(parents=True)
    metrics = {"status": "finished", "seed": seed, "num_params": 10, "train_cpu_time_s": 1.0, "test": {"mse": mse}}
    (run / "metrics.json").write_text(json.dumps(metrics | fields))


def experiment_script(name: str) -> ModuleType:
    """Import experiments/NAME.py as the scripts run: beside their folder's common.py (not benchmarks/common.py,
    which another test may have imported)."""
    folder = REPO / "experiments"
    sys.path.insert(0, str(folder))
    other = sys.modules.pop("common", None)
    try:
        spec = importlib.util.spec_from_file_location(f"experiment_{name}", folder / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("common", None)
        if other is not None:
            sys.modules["common"] = other
    return module

"""CPU-runnable guards of the GPU path: what a solve and a training step create, where, and how often they wait
for the device. No GPU is needed: host syncs are counted where kirchhoffnet's own code makes them, and the
CUDA-only choices are checked on a kernel that is told it lives on CUDA."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.circuit._fused import MIN_EDGES, numba_kernel

from .conftest import small_circuit
from .training.helpers import tiny_flow

SRC = str(Path(kn.__file__).parent)
# The tensor methods that copy a value to the host and so wait for a GPU; torch.equal returns a bool too.
SYNCS = ("__bool__", "__float__", "__int__", "item", "tolist", "cpu", "numpy")


@contextmanager
def host_syncs(monkeypatch: pytest.MonkeyPatch, where: str = SRC) -> Iterator[list[str]]:
    """Record ``file:line`` of every host sync made directly by code under ``where``."""
    seen: list[str] = []

    def spy(original):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            caller = sys._getframe(1).f_code
            if caller.co_filename.startswith(where):
                seen.append(f"{caller.co_filename}:{sys._getframe(1).f_lineno}")
            return original(*args, **kwargs)

        return wrapper

    for name in SYNCS:
        monkeypatch.setattr(torch.Tensor, name, spy(getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch, "equal", spy(torch.equal))
    yield seen
    monkeypatch.undo()


def test_the_time_grid_is_built_on_the_states_device(monkeypatch):
    devices = []
    linspace = torch.linspace

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        devices.append(kwargs.get("device"))
        return linspace(*args, **kwargs)

    monkeypatch.setattr(torch, "linspace", spy)
    circuit = small_circuit(slices=2).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    kn.simulate(circuit, x, solver=kn.Solver(integrator="torchdiffeq"))
    assert devices == [x.device, x.device]  # one grid per slice, each placed with the state


@pytest.mark.parametrize("step_size", [0.05, 0.01])
def test_a_fixed_step_solve_waits_for_the_device_a_fixed_number_of_times(monkeypatch, step_size):
    slices = 4
    circuit = small_circuit(slices=slices).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    solver = kn.Solver(method="rk4", step_size=step_size)
    expected, _ = kn.simulate(circuit, x, solver=solver)
    with host_syncs(monkeypatch) as seen:
        v, _ = kn.simulate(circuit, x, solver=solver)
    # The input check, one capacitance comparison per slice solve (which kernel to use) and one check of all
    # slice ends: none per evaluation or step, whatever the step size, and no finiteness check per slice.
    assert len(seen) == 1 + slices + 1, seen
    torch.testing.assert_close(v, expected, rtol=0, atol=0)


def test_inference_compares_the_parameters_once_per_slice_solve(monkeypatch):
    slices = 3
    circuit = small_circuit(slices=slices).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    solver = kn.Solver(method="rk4", step_size=0.02)
    with torch.no_grad():
        expected, _ = kn.simulate(circuit, x, solver=solver)  # builds the operators
        with torch.no_grad():
            circuit.slice(1).params.mul_(1.25)  # the next solve must see this, with no autograd version bump
        changed, stats = kn.simulate(circuit, x, solver=solver)
        assert stats.kernels == [["affine"]] * slices
        with host_syncs(monkeypatch) as seen:
            v, _ = kn.simulate(circuit, x, solver=solver)
    # input check, then per slice solve the capacitance and the parameters once each, then the slice ends
    assert len(seen) == 1 + 2 * slices + 1, seen
    torch.testing.assert_close(v, changed, rtol=0, atol=0)
    assert not torch.equal(changed, expected)
    circuit.slice(1).params.data.mul_(0.8)  # back to the first values, the cache rebuilt from them
    with torch.no_grad():
        torch.testing.assert_close(kn.simulate(circuit, x, solver=solver)[0], expected)


def test_a_fixed_step_blow_up_still_names_its_slice():
    circuit = small_circuit(slices=3).double()
    with torch.no_grad():
        circuit.slice(1).params.fill_(float("nan"))
    with pytest.raises(kn.errors.SolverError, match=r"^slice 1 \(t from"):
        kn.simulate(circuit, torch.randn(5, 3, dtype=torch.float64), solver=kn.Solver(method="rk4", step_size=0.1))


def test_a_training_step_waits_for_the_device_once(monkeypatch, tmp_path):
    from kirchhoffnet.training._distributed import Cluster
    from kirchhoffnet.training._loop import Trainer

    trainer = Trainer(tiny_flow(), Cluster(0, 1, torch.device("cpu")), tmp_path, progress=False)
    loop = str(Path(kn.__file__).parent / "training" / "_loop.py")
    with host_syncs(monkeypatch, loop) as seen:
        loss, norm, skipped = trainer._train_step(torch.arange(64))
    assert len(seen) == 1, seen  # loss and gradient norm come back together
    assert loss == loss and norm == norm and not skipped  # both real numbers: NaN != NaN


def _large_kernel(num_nodes: int = 40) -> tuple[kn.Slice, object]:
    edges = kn.topology.fully_connect(num_nodes, (2, 1))
    piece = kn.Circuit(edges, "ShiftRelu2", init="gauss").slice(0)
    assert piece.num_edges >= MIN_EDGES
    return piece, piece.kernel(torch.float32, torch.device("cpu"))


@pytest.mark.skipif(numba_kernel() is None, reason="numba is not installed: the CPU would not take it either")
def test_auto_takes_the_torch_paths_on_cuda(monkeypatch):
    piece, kernel = _large_kernel()
    family = piece.device_family
    assert kernel.path(family, "auto", track=False) == "fused"  # on the CPU the numba kernel
    monkeypatch.setattr(kernel, "device", torch.device("cuda"))
    assert kernel.path(family, "auto", track=False) == "affine"
    assert kernel.path(family, "auto", track=True) == "affine-vjp"
    assert kernel.fused_for(family, "auto") is None
    with pytest.raises(kn.errors.ConfigError, match="runs on CPU only, not cuda"):
        kernel.path(family, "fused")


def test_off_the_cpu_a_slice_is_one_chunk(monkeypatch):
    _, kernel = _large_kernel()
    assert len(kernel.chunks(2048, whole=False)) > 1  # CPU: cache-sized chunks
    monkeypatch.setattr(kernel, "device", torch.device("cuda"))
    assert kernel.chunks(2048, whole=False) == [kernel.whole]


def test_an_optimiser_step_rebuilds_no_csr_structure():
    piece, kernel = _large_kernel()
    assert not kernel.dense
    before = kernel.affine_coefficients(piece.device_family, piece.params)
    gather, _ = kernel.operators(kernel.whole, *before)
    after = kernel.affine_coefficients(piece.device_family, piece.params * 1.5)  # new values, same topology
    rebuilt, _ = kernel.operators(kernel.whole, *after)
    assert rebuilt.crow_indices().data_ptr() == gather.crow_indices().data_ptr()
    assert rebuilt.col_indices().data_ptr() == gather.col_indices().data_ptr()
    assert not torch.equal(rebuilt.values(), gather.values())


def test_flow2d_evaluation_leaves_the_model_where_it_is(monkeypatch, tmp_path):
    from kirchhoffnet.tasks import make_task

    config = tiny_flow()
    task = make_task(config, torch.device("cpu"), torch.float32, tmp_path, False, None)
    task.prepare()
    model = task.build_model()
    moved = []
    monkeypatch.setattr(torch.nn.Module, "cpu", lambda self: moved.append(self) or self)
    metrics = task.evaluate(model, tmp_path)
    assert moved == []
    assert metrics["nll_nats"] == metrics["nll_nats"]

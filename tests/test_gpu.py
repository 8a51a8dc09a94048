"""The CUDA path against the CPU: simulate, log-density, sampling, the sparse large-circuit kernels and a training
step of the 2-D flow and of a classifier, each in float64 on both devices. Run with ``pytest -m gpu``; skipped
where ``torch.cuda.is_available()`` is false (CI, the CPU development machines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.config import Config, parse_config

from .conftest import small_circuit
from .training.helpers import tiny_flow

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: torch.cuda.is_available() is False"),
]

CPU = torch.device("cpu")
GPU = torch.device("cuda")
TIGHT = kn.Solver(rtol=1e-9, atol=1e-9)
# Adaptive step control accepts or rejects on an error estimate that differs in its last bits between the
# devices: the answers agree to the tolerance, not bit for bit.
CLOSE = {"rtol": 1e-6, "atol": 1e-7}


def _flow() -> kn.Flow:
    edges = kn.topology.fully_connect(3, (2, 2))
    circuit = kn.Circuit(edges, "ShiftTanh2", slices=2, init="gauss").double()
    with torch.no_grad():
        for piece in circuit.slices:
            piece.params.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    return kn.Flow(circuit, solver=TIGHT)


def _on(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module).to(device)


def test_simulate_on_cuda_matches_the_cpu():
    circuit = small_circuit(slices=3).double()
    x = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected, _ = kn.simulate(circuit, x, solver=TIGHT)
    v, stats = kn.simulate(_on(circuit, GPU), x.to(GPU), solver=TIGHT)
    assert v.device.type == GPU.type
    torch.testing.assert_close(v.cpu(), expected, **CLOSE)
    assert all("fused" not in paths for paths in stats.kernels)  # the numba kernel is CPU-only


@pytest.mark.parametrize("kernel", ["auto", "gather"])
def test_a_large_sparse_circuit_and_its_gradient_on_cuda_match_the_cpu(kernel):
    edges = kn.topology.fully_connect(40, (2, 1))
    circuit = kn.Circuit(edges, "ShiftRelu2", init="gauss").double()  # 39 state nodes: CSR operators
    x = torch.randn(32, 39, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    solver = kn.Solver(rtol=1e-8, atol=1e-8, kernel=kernel)
    results = []
    for device in (CPU, GPU):
        model = _on(circuit, device)
        v, stats = kn.simulate(model, x.to(device), solver=solver)
        v.square().sum().backward()
        grads = [p.grad.cpu() for p in model.parameters() if p.grad is not None]
        results.append((v.detach().cpu(), grads, stats.kernels))
    (cpu_v, cpu_grads, _), (gpu_v, gpu_grads, gpu_kernels) = results
    torch.testing.assert_close(gpu_v, cpu_v, **CLOSE)
    assert len(gpu_grads) == len(cpu_grads) > 0
    for gpu_grad, cpu_grad in zip(gpu_grads, cpu_grads, strict=True):
        torch.testing.assert_close(gpu_grad, cpu_grad, rtol=1e-5, atol=1e-6)
    assert "fused" not in str(gpu_kernels) or GPU.type == "cpu"


def test_log_prob_and_its_gradient_on_cuda_match_the_cpu():
    flow = _flow()
    x = torch.randn(128, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    results = []
    for device in (CPU, GPU):
        model = _on(flow, device)
        log_p = model.log_prob(x.to(device))
        log_p.mean().backward()
        results.append((log_p.detach().cpu(), [p.grad.cpu() for p in model.parameters()]))
    (cpu_log_p, cpu_grads), (gpu_log_p, gpu_grads) = results
    torch.testing.assert_close(gpu_log_p, cpu_log_p, **CLOSE)
    for gpu_grad, cpu_grad in zip(gpu_grads, cpu_grads, strict=True):
        torch.testing.assert_close(gpu_grad, cpu_grad, rtol=1e-5, atol=1e-7)


def test_sampling_on_cuda_matches_the_cpu():
    flow = _flow()
    z = torch.randn(256, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = flow.sample(z)
        samples = _on(flow, GPU).sample(z.to(GPU))
    assert samples.device.type == GPU.type
    torch.testing.assert_close(samples.cpu(), expected, **CLOSE)


def _step(config: Config, device: torch.device, tmp_path, indices: torch.Tensor) -> tuple:
    """One optimiser step of a fresh trainer on ``device``: (loss, gradient norm, skipped, parameters after)."""
    from kirchhoffnet.training._distributed import Cluster
    from kirchhoffnet.training._loop import Trainer

    run_dir = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
    run_dir.mkdir()
    trainer = Trainer(config, Cluster(0, 1, device), run_dir, progress=False)
    loss, norm, skipped = trainer._train_step(indices)
    return loss, norm, skipped, [p.detach().cpu() for p in trainer.model.parameters()]


def _same_step(config: Config, tmp_path, indices: torch.Tensor) -> None:
    cpu = _step(config, CPU, tmp_path, indices)
    gpu = _step(config, GPU, tmp_path, indices)
    assert not cpu[2] and not gpu[2]
    assert gpu[0] == pytest.approx(cpu[0], rel=1e-6) and gpu[1] == pytest.approx(cpu[1], rel=1e-5)
    for after_gpu, after_cpu in zip(gpu[3], cpu[3], strict=True):
        torch.testing.assert_close(after_gpu, after_cpu, rtol=1e-6, atol=1e-8)


def test_a_flow2d_training_step_on_cuda_matches_the_cpu(tmp_path):
    config = tiny_flow("solver.rtol=1e-8", "solver.atol=1e-8", dtype="float64")
    _same_step(config, tmp_path, torch.arange(64))


def test_a_classifier_training_step_on_cuda_matches_the_cpu(tmp_path):
    labels = np.arange(48) % 3
    noise = np.random.default_rng(0).integers(0, 40, size=(48, 4, 4))
    np.savez(tmp_path / "images.npz", x=(labels[:, None, None] * 100 + noise).astype(np.uint8), y=labels)
    config = parse_config(
        {
            "task": "classify",
            "threads": 1,
            "dtype": "float64",
            "data": {"source": "file", "path": str(tmp_path / "images.npz")},
            "circuit": {"topology": {"name": "fully_connect", "num_nodes": 21, "repeat": [1, 1]}, "times": [0, 1]},
            "readout": "last3",
            "solver": {"rtol": 1e-8, "atol": 1e-8, "gradient": "backprop"},
            "train": {"epochs": 1, "batch_size": 16, "lr": 1e-2},
        }
    )
    _same_step(config, tmp_path, torch.arange(16))


def test_flow2d_evaluation_runs_on_cuda_and_leaves_the_model_there(tmp_path):
    from kirchhoffnet.tasks import make_task

    config = tiny_flow(dtype="float64")
    nll = []
    for k, device in enumerate((CPU, GPU)):
        task = make_task(config, device, torch.float64, tmp_path, False, None)
        task.prepare()
        torch.manual_seed(0)
        model = task.build_model().to(device=device, dtype=torch.float64)
        (tmp_path / str(k)).mkdir()
        nll.append(task.evaluate(model, tmp_path / str(k))["nll_nats"])
        assert next(model.parameters()).device.type == device.type
    assert nll[1] == pytest.approx(nll[0], rel=1e-5)

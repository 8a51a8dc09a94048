"""A notebook user's session, end to end: their own module around a kn.Network, a plain PyTorch training loop,
the library's plots, and the trained network exported (torch.export and ONNX)."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import kirchhoffnet as kn
from kirchhoffnet.hardware.plots import plot_waveforms
from kirchhoffnet.tasks.plots import loss_curves


class CircuitRegressor(nn.Module):
    """What a user writes: the circuit as a feature map, a linear readout of its final voltages."""

    def __init__(self) -> None:
        super().__init__()
        edges = kn.topology.fully_connect(num_nodes=5)
        circuit = kn.Circuit(edges, device="ShiftTanh2", slices=2, times=(0.0, 0.5, 1.0), init="gauss")
        self.network = kn.Network(circuit, solver=kn.Solver("rk4", step_size=0.25))
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.network(x)).squeeze(1)


def test_a_notebook_users_session() -> None:
    torch.manual_seed(0)
    x = torch.rand(32, 2) * 2 - 1
    y = torch.sin(2 * x[:, 0]) * x[:, 1]
    model = CircuitRegressor()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]

    backend = matplotlib.get_backend()
    history = {"epoch": list(range(1, len(losses) + 1)), "train_loss": losses, "val_loss": [None] * len(losses)}
    assert isinstance(loss_curves(history, "training"), Figure)
    measurement = kn.hardware.measure(model.network, x[:2], points_per_slice=11)
    assert isinstance(plot_waveforms(measurement, kn.hardware.PhysicalDesign(), "the circuit at work"), Figure)
    assert matplotlib.get_backend() == backend  # the library drew without pyplot

    model.eval()
    with torch.no_grad():
        expected = model(x)
    program = torch.export.export(model, (x,))
    torch.testing.assert_close(program.module()(x), expected, rtol=0, atol=1e-6)

    ort = pytest.importorskip("onnxruntime", reason="ONNX needs the dev extra's onnx, onnxscript and onnxruntime")
    pytest.importorskip("onnxscript")
    exported = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
    assert exported is not None
    session = ort.InferenceSession(exported.model_proto.SerializeToString())
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), expected, rtol=0, atol=1e-6)

"""Feed-forward networks and readouts."""

from __future__ import annotations

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.errors import ConfigError

from ..conftest import small_circuit


@pytest.mark.parametrize(
    ("readout", "width"),
    [("last2", 2), ("first1", 1), (None, 5), ({"name": "linear", "in_nodes": 5, "out_features": 3}, 3)],
)
def test_readouts_shape_the_output(readout, width):
    net = kn.Network(small_circuit(num_nodes=6), readout)
    out = net(torch.randn(4, 3))
    assert out.shape == (4, width)
    assert net.stats is not None and len(net.stats.nfe) == 2


def test_last_and_first_pick_the_right_nodes():
    circuit = kn.Circuit(kn.topology.fully_connect(5), "Conductance", init="zeros")
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert kn.Network(circuit, "last2")(x).tolist() == [[3.0, 4.0]]
    assert kn.Network(circuit, "first1")(x).tolist() == [[1.0]]
    scaled = kn.Network(circuit, {"name": "last", "k": 2, "scale": 10.0})
    assert scaled(x).tolist() == [[30.0, 40.0]]  # logits per 0.1 V: the argmax is the nodes'
    assert kn.Network(circuit, {"name": "first", "k": 1, "scale": 0.5})(x).tolist() == [[0.5]]
    assert scaled.readout.spec() == {"name": "last", "k": 2, "scale": 10.0}


def test_a_scaled_readout_survives_save_and_load(tmp_path):
    net = kn.Network(small_circuit(num_nodes=6), {"name": "last", "k": 2, "scale": 10.0})
    loaded = kn.load(kn.save(net, tmp_path / "net.safetensors"))
    x = torch.randn(3, 3)
    torch.testing.assert_close(loaded(x), net(x))
    assert loaded.readout.spec()["scale"] == 10.0


def test_network_trains_by_backprop():
    torch.manual_seed(0)
    net = kn.Network(small_circuit(num_nodes=5, slices=1), "last1", kn.Solver(rtol=1e-5, atol=1e-5))
    x = torch.randn(64, 3)
    y = x[:, :1] * 0.5 - x[:, 1:2] * 0.3
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    ("readout", "message"),
    [
        ("middle3", "unknown readout 'middle3'"),
        ({"name": "mlp"}, "unknown readout 'mlp'"),
        ("last0", "positive node count"),
        ({"name": "linear", "size": 3}, "bad settings for readout 'linear'"),
        ({"name": "last", "k": 2, "scale": 0.0}, "scale must be a positive finite number"),
        ({"name": "first", "k": 2, "scale": float("inf")}, "scale must be a positive finite number"),
    ],
)
def test_bad_readouts(readout, message):
    with pytest.raises(ConfigError, match=message):
        kn.Network(small_circuit(), readout)


def test_a_network_without_readout_is_the_circuits_forward_map():
    circuit = small_circuit(num_nodes=4)
    x = torch.randn(5, 3)
    expected, _ = kn.simulate(circuit, x)
    torch.testing.assert_close(kn.Network(circuit)(x), expected, rtol=0, atol=0)


def test_calling_a_circuit_names_the_module_that_runs_it():
    with pytest.raises(ConfigError, match=r"kn\.Network\(circuit\)\(v_in\)"):
        small_circuit()(torch.randn(2, 3))


def test_a_network_trains_inside_a_user_module():
    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Linear(2, 3)
            self.circuit = kn.Network(small_circuit(num_nodes=4), solver=kn.Solver("rk4", step_size=0.25))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.circuit(self.scale(x)).sum(dim=1)

    model = Model()
    assert sum(p.numel() for p in model.parameters()) == 9 + model.circuit.circuit.num_params
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = torch.randn(16, 2), torch.randn(16)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]

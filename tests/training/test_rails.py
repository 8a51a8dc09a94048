"""train.rails: the penalty keeps a trained circuit's node voltages within the supply rails."""

from __future__ import annotations

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.config import parse_config
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.tasks import make_task
from kirchhoffnet.training._objective import rail_excursion

from .helpers import tiny_regression

RAILS = (-2.0, 2.0)  # the standardised friedman inputs lie within ±1.9 V, so the rails can hold every node
TWO_SLICES = ("train.epochs=10", "circuit.times=[0.0, 0.5, 1.0]", "circuit.slices=2")


def _node_range(rails: str | None, tmp_path: object) -> tuple[float, float, float]:
    """Train the tiny regression with or without the penalty; its test inputs' node voltages at every
    slice end: (lowest, highest, penalty at RAILS)."""
    config = tiny_regression(*TWO_SLICES, *([f"train.rails={rails}"] if rails else []))
    model = kn.train(config, f"{tmp_path}/{'rails' if rails else 'free'}", progress=False).model
    task = make_task(config, torch.device("cpu"), torch.float32, None, False, None)
    task.prepare()
    with torch.no_grad(), kn.solve.recording_slice_ends() as ends:
        model(task.test_data()[0])
    voltages = torch.cat([v.flatten() for v in ends])
    return float(voltages.min()), float(voltages.max()), float(rail_excursion(ends, *RAILS))


def test_rails_penalty_keeps_nodes_within_the_supply(tmp_path: object) -> None:
    free_low, free_high, free_excursion = _node_range(None, tmp_path)
    low, high, excursion = _node_range(f"{{low: {RAILS[0]}, high: {RAILS[1]}, weight: 10}}", tmp_path)
    assert free_low < RAILS[0] - 0.3 or free_high > RAILS[1] + 0.3  # without it the hidden nodes leave the rails
    assert free_excursion > 0.1
    assert RAILS[0] - 0.05 <= low and high <= RAILS[1] + 0.05, (low, high)
    assert excursion < 1e-3 * free_excursion


def test_rail_excursion_is_the_squared_distance_outside() -> None:
    ends = torch.tensor([[[-3.0, 0.0]], [[0.5, 4.0]]])  # (2 ends, 1 node, 2 samples)
    # sample 0: (−3 − (−2))² = 1; sample 1: (4 − 2)² = 4; mean over the batch 2.5
    assert float(rail_excursion([ends], -2.0, 2.0)) == pytest.approx(2.5)
    assert float(rail_excursion([ends.clamp(-2, 2)], -2.0, 2.0)) == 0.0


def test_rails_must_be_ordered_and_need_a_circuit(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="low must be below high"):
        tiny_regression("train.rails={low: 1, high: 0}")
    config = parse_config(
        {
            "task": "regression",
            "data": {"name": "friedman", "n_samples": 50, "n_features": 5},
            "baseline": {"hidden": [4]},
            "train": {"epochs": 1, "batch_size": 16, "lr": 1e-2, "rails": {"low": 0, "high": 1}},
        }
    )
    with pytest.raises(ConfigError, match="no node voltages"):
        kn.train(config, f"{tmp_path}/mlp", progress=False)


def test_slice_ends_are_recorded_inside_the_block_only_and_models_keep_no_graph() -> None:
    """The penalty reads the solves' slice ends from a recording block, not from model state: a model
    stays deep-copyable after a differentiable forward (a die copy in hardware analysis does that)."""
    import copy

    circuit = kn.Circuit(kn.topology.fully_connect(3), "ShiftTanh2", slices=2, times=(0.0, 0.5, 1.0))
    net = kn.Network(circuit)
    x = torch.randn(4, 2)  # nodes 1 and 2 (node 0 is ground)
    with kn.solve.recording_slice_ends() as ends:
        net(x)
    assert [tuple(v.shape) for v in ends] == [(2, 2, 4), (2, 2, 4)] and ends[0].requires_grad
    net(x)
    assert len(ends) == 2  # nothing recorded once the block has ended
    copy.deepcopy(net)


class _Forward:
    """A task whose loss is zero: only the rails penalty is left in the objective."""

    def loss(self, model: torch.nn.Module, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return model(batch).sum() * 0.0


def test_the_penalty_sees_a_node_that_leaves_the_rails_mid_slice_and_returns_by_its_end() -> None:
    """Node 1 charges at 1 A/F and drains into node 2 at 8·v2, while node 2 charges slowly (1 mA) and so ever
    faster: node 1 peaks near t = 0.86 and falls back by the slice's end. With the high rail between every end
    value and that peak, the slice's two ends see nothing; train.rails' interior points see the excursion."""
    from kirchhoffnet.config.tasks import RailsConfig
    from kirchhoffnet.training._objective import Objective

    edges = torch.tensor([[0, 0, 1], [1, 2, 2]])  # ground → 1, ground → 2, 1 → 2; i = relu(p0·v_src + p1·v_dst + p2)
    circuit = kn.Circuit(edges, "ShiftRelu2", slices=1, times=(0.0, 1.0))
    with torch.no_grad():
        circuit.slice(0).params.copy_(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 8.0], [1.0, 1e-3, 0.0]]))
    net = kn.Network(circuit)
    x = torch.zeros(1, 2)
    waves, _ = kn.solve.trajectory(circuit, x, solver={"method": "dopri5", "rtol": 1e-8, "atol": 1e-8})
    v = waves[0][1][:, 0, :].detach()
    peak, ends = float(v.max()), float(v[[0, -1]].max())
    assert peak > ends + 0.1  # the excursion is mid-slice (0.739 V against 0.628 V at the end)
    high = (peak + ends) / 2
    for points, penalised in ((2, False), (9, True)):
        rails = RailsConfig(low=-1.0, high=high, weight=1.0, points=points)
        penalty = float(Objective(_Forward(), net, rails)(x, torch.Generator()))  # type: ignore[arg-type]
        assert (penalty > 1e-4) == penalised, (points, penalty)
    assert RailsConfig(low=0.0, high=1.0).points > 2  # the default looks inside the slice


def test_recording_points_must_include_the_ends() -> None:
    with pytest.raises(ConfigError, match="points must be an integer >= 2"), kn.solve.recording_slice_ends(1):
        pass

"""Metrics as functions of a model, and the energy distance against its closed form."""

from __future__ import annotations

import math

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware import accuracy, energy_distance, flow_nll, mse

from ..conftest import small_circuit


def test_accuracy_and_mse_of_a_network():
    circuit = kn.Circuit(kn.topology.fully_connect(4), "Conductance", init="zeros")  # outputs = inputs
    net = kn.Network(circuit, "last2")
    x = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 2.0]])
    assert accuracy(x, torch.tensor([0, 1, 0]))(net) == pytest.approx(2 / 3)
    assert mse(x, torch.zeros(3, 2))(net) == pytest.approx((1 + 1 + 1 + 4) / 6)


def test_metrics_refuse_the_wrong_model():
    net = kn.Network(small_circuit())
    with pytest.raises(ConfigError, match="metric nll_nats needs a Flow, got a Network"):
        flow_nll(torch.zeros(2, 2))(net)
    flow = kn.Flow(kn.Circuit(kn.topology.fully_connect(3), "ShiftTanh2"))
    with pytest.raises(ConfigError, match="metric accuracy needs a Network, got a Flow"):
        accuracy(torch.zeros(2, 2), torch.zeros(2))(flow)


def test_energy_distance_of_shifted_gaussians_matches_its_closed_form():
    # 1-D N(0,1) vs N(μ,1): 2E|X−Y| − E|X−X'| − E|Y−Y'| with X−Y ~ N(−μ, 2) and E|X−X'| = 2/√π.
    mu, s = 1.0, math.sqrt(2.0)
    mean_abs = s * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * s**2)) + mu * math.erf(mu / (s * math.sqrt(2)))
    expected = 2 * mean_abs - 2 * (2 / math.sqrt(math.pi))
    g = torch.Generator().manual_seed(0)

    def draw(shift: float) -> torch.Tensor:
        return torch.randn(1500, 1, generator=g, dtype=torch.float64) + shift

    shifted = [energy_distance(draw(0.0), draw(mu)) for _ in range(8)]
    same = [energy_distance(draw(0.0), draw(0.0)) for _ in range(8)]
    # One 1500-point estimate has a standard error of about 0.044; the mean of 8, 0.016.
    assert sum(shifted) / 8 == pytest.approx(expected, abs=0.06)
    assert abs(sum(same) / 8) < 0.02  # unbiased U-statistic: ≈ 0 for equal distributions


def test_energy_distance_needs_two_points():
    with pytest.raises(ConfigError, match="energy distance needs at least 2 points per sample, got 1 and 5"):
        energy_distance(torch.zeros(1, 2), torch.zeros(5, 2))

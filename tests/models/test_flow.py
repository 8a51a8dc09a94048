"""Continuous normalizing flows: the change of variables, normalisation, sampling."""

from __future__ import annotations

import math

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.errors import ConfigError

from ..conftest import small_circuit

TIGHT = kn.Solver(rtol=1e-9, atol=1e-9)


def _flow(gradient: kn.solve.GradientMethod = kn.solve.DEFAULT_GRADIENT, device: str = "ShiftTanh2") -> kn.Flow:
    circuit = small_circuit(device, num_nodes=3, slices=2, repeat=(3, 3))
    return kn.Flow(circuit, TIGHT, gradient).double()


def test_log_prob_is_the_change_of_variables():
    # log p(x) = log N(z) + log |det ∂z/∂x|, with the Jacobian of the inverse map from autograd.
    flow = _flow()
    x = torch.randn(4, 2, dtype=torch.float64)
    log_p = flow.log_prob(x)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(lambda p: flow.inverse(p[None])[0], x[i])
        z = flow.inverse(x[i : i + 1])
        expected = kn.models.standard_normal_log_prob(z)[0] + torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(log_p[i], expected, rtol=1e-7, atol=1e-7)


def test_density_integrates_to_one():
    flow = kn.Flow(
        small_circuit("ShiftTanh1", num_nodes=3, slices=1, repeat=(2, 2)), kn.Solver(rtol=1e-7, atol=1e-7)
    ).double()
    grid = torch.linspace(-7, 7, 141, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    with torch.no_grad():
        mass = flow.log_prob(points).exp().sum() * (grid[1] - grid[0]) ** 2
    # Riemann sum of a smooth density on a 0.1 grid over ±7σ: error well below 1e-3.
    assert abs(mass.item() - 1.0) < 1e-3


def test_sampling_and_density_agree():
    flow = _flow()
    z = torch.randn(16, 2, dtype=torch.float64)
    x, log_q = flow.sample_with_log_prob(z)
    torch.testing.assert_close(flow.sample(z), x)
    torch.testing.assert_close(flow.log_prob(x), log_q, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(flow.inverse(x), z, rtol=1e-6, atol=1e-7)


def test_sample_count_is_reproducible_with_a_generator():
    flow = _flow()
    a = flow.sample(5, generator=torch.Generator().manual_seed(7))
    b = flow.sample(5, generator=torch.Generator().manual_seed(7))
    assert a.shape == (5, 2) and a.dtype == torch.float64
    torch.testing.assert_close(a, b)
    with pytest.raises(ConfigError, match="number of samples must be positive"):
        flow.sample(0)


@pytest.mark.parametrize("gradient", [kn.Backprop(), kn.Adjoint(), kn.Adjoint(seminorm=True)], ids=str)
def test_log_prob_gradient_matches_finite_differences(gradient):
    flow = _flow(gradient)
    x = torch.randn(3, 2, dtype=torch.float64)
    params = flow.circuit.slice(1).params
    flow.zero_grad()
    flow.log_prob(x).sum().backward()
    analytic = params.grad[:, :4].clone()
    base = params.detach().clone()
    eps = 1e-6
    numeric = torch.zeros_like(analytic)
    for r in range(analytic.shape[0]):
        for c in range(analytic.shape[1]):
            values = []
            for sign in (1, -1):
                with torch.no_grad():
                    params.copy_(base)
                    params[r, c] += sign * eps
                    values.append(flow.log_prob(x).sum().item())
            numeric[r, c] = (values[0] - values[1]) / (2 * eps)
    with torch.no_grad():
        params.copy_(base)
    # The adjoint solves the backward ODE to the same 1e-9 tolerance, hence 1e-5.
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-6)


def test_standard_normal_log_prob():
    z = torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=torch.float64)
    expected = torch.tensor([-math.log(2 * math.pi), -math.log(2 * math.pi) - 2.5], dtype=torch.float64)
    torch.testing.assert_close(kn.models.standard_normal_log_prob(z), expected)


def test_a_flow_needs_equal_widths():
    circuit = kn.Circuit([kn.topology.fully_connect(3), kn.topology.fully_connect(4)])
    with pytest.raises(ConfigError, match="same node count"):
        kn.Flow(circuit)

"""The power account of a slice (``Slice.power``) and its integration over time."""

from __future__ import annotations

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.circuit import EnergyTally, Power
from kirchhoffnet.circuit.power import charging_energy, integrate, stored_energy, trapezoid_weights

from ..conftest import small_circuit


@pytest.mark.parametrize("device", ["ShiftTanh2", "ShiftRelu1", "Conductance"])
def test_device_power_is_the_stored_energy_the_capacitors_lose(device):
    # Σ_e i_e (v_src − v_dst) = −Σ_n c_n v_n dv_n/dt: what the devices absorb, the capacitors give up.
    piece = small_circuit(device, num_nodes=5, slices=1).double().slice(0)
    with torch.no_grad():
        piece.capacitance.uniform_(0.5, 2.0)
    v = torch.randn(7, 4, dtype=torch.float64)
    power = piece.power(v)
    absorbed = power.dissipated - power.delivered
    lost = -(piece.capacitance * v * piece(0.0, v)).sum(1)
    torch.testing.assert_close(absorbed, lost, rtol=1e-12, atol=1e-12)
    current = piece.currents(v)
    torch.testing.assert_close(power.current, current.abs().sum(1))
    torch.testing.assert_close(power.peak_current, current.abs().amax(1))
    assert bool((power.dissipated >= 0).all() and (power.delivered >= 0).all())


def test_conductances_only_dissipate_g_v_squared():
    piece = kn.Slice(torch.tensor([[1, 2], [2, 0]]), "Conductance", params=torch.tensor([[2.0, 0.5]])).double()
    v = torch.tensor([[1.0, -0.5], [0.2, 0.4]], dtype=torch.float64)
    power = piece.power(v)
    drops = torch.stack([v[:, 0] - v[:, 1], v[:, 1]], dim=1)
    torch.testing.assert_close(power.dissipated, (torch.tensor([2.0, 0.5]) * drops.square()).sum(1).double())
    assert bool((power.delivered == 0).all())
    leak = Power.resistive(0.5, v[:, 1:])  # the second device as a resistor to ground
    torch.testing.assert_close(leak.dissipated, 0.5 * v[:, 1].square())
    both = piece.power(v, params=torch.tensor([[2.0, 0.0]], dtype=torch.float64)).plus(leak)
    torch.testing.assert_close(both.dissipated, power.dissipated)  # the same devices, counted in two parts


def test_negative_conductance_delivers():
    piece = kn.Slice(torch.tensor([[1], [0]]), "Conductance", params=torch.tensor([[-1.5]])).double()
    with torch.no_grad():
        power = piece.power(torch.tensor([[2.0]], dtype=torch.float64))
    assert float(power.delivered) == pytest.approx(6.0) and float(power.dissipated) == 0.0


def test_integration_and_tally():
    t = torch.tensor([0.0, 0.1, 0.3, 0.7, 1.0], dtype=torch.float64)
    y = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(integrate(y, t), torch.trapezoid(y, t, dim=0))
    assert float(trapezoid_weights(t).sum()) == pytest.approx(1.0)
    tally = EnergyTally.zeros(3, torch.float64)
    zeros = torch.zeros(5, 3, dtype=torch.float64)
    tally.add(Power(y.abs(), zeros, y.abs(), y.abs()), trapezoid_weights(t), devices=2)
    torch.testing.assert_close(tally.dissipated, integrate(y.abs(), t))
    assert tally.device_time == pytest.approx(float(integrate(y.abs(), t).mean()) / 2)
    assert tally.peak_total == float(y.abs().max())
    stepped = EnergyTally.zeros(3, torch.float64)  # the rectangle rule: one step of 0.25
    stepped.add(Power(y[0].abs(), zeros[0], y[0].abs(), y[0].abs()), 0.25)
    torch.testing.assert_close(stepped.dissipated, 0.25 * y[0].abs())


def test_stored_and_charging_energy():
    cap = torch.tensor([1.0, 2.0])
    before, after = torch.tensor([[1.0]]), torch.tensor([[0.5, -1.0]])
    assert float(stored_energy(after, cap)) == pytest.approx(0.5 * 0.25 + 1.0)
    # node 1 falls (no draw), node 2 charges from 0 V: c·w² = 2
    assert float(charging_energy(before, after, cap)) == pytest.approx(2.0)

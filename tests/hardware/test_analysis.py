"""Latency, energy and voltages of an inference: closed forms, conservation, scaling laws."""

from __future__ import annotations

import json
import math

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware import PhysicalDesign, analyze, measure

from ..conftest import small_circuit

TIGHT = kn.Solver(rtol=1e-10, atol=1e-10)


def one_node(conductance: float, capacitance: float, duration: float) -> kn.Circuit:
    """Node 1 with a single conductance to ground: an RC circuit (active if the conductance is negative)."""
    piece = kn.Slice(
        torch.tensor([[1], [0]]), "Conductance", capacitance=capacitance, params=torch.tensor([[conductance]])
    )
    return kn.Circuit([piece], times=(0.0, duration)).double()


def test_rc_discharge_energy_matches_closed_form():
    g, c, T = 1.5, 2.0, 1.2
    v0 = torch.tensor([[0.7], [-0.3], [1.1]], dtype=torch.float64)
    design = PhysicalDesign(capacitance_f=3e-12, voltage_v=0.5)
    report = analyze(one_node(g, c, T), v0, design, solver=TIGHT, points_per_slice=401)
    mean_sq = float((v0**2).mean())
    # ½ c v0² (1 − e^{−2gT/c}) of stored energy becomes heat; the drivers charged c v0² at t = 0.
    heat = 0.5 * c * mean_sq * (1 - math.exp(-2 * g * T / c)) * design.energy_j
    assert report.energy_dissipated_j == pytest.approx(heat, rel=1e-5)  # trapezoid error ~ (h·2g/c)²/12
    assert report.energy_delivered_j == 0.0  # a positive conductance never delivers power
    assert report.energy_load_j == pytest.approx(c * mean_sq * design.energy_j, rel=1e-12)
    assert report.energy_j == pytest.approx(report.energy_load_j, rel=1e-12)
    assert report.peak_device_current_a == pytest.approx(g * 1.1 * design.current_a, rel=1e-9)  # i = g·v at t = 0


def test_negative_conductance_is_an_active_device_that_delivers_energy():
    g, c, T = -1.0, 1.0, 0.8
    v0 = torch.tensor([[0.5]], dtype=torch.float64)
    report = analyze(one_node(g, c, T), v0, PhysicalDesign(), solver=TIGHT, points_per_slice=401)
    # dv/dt = v/c: the device pumps ½ c v0² (e^{2T/c} − 1) into the capacitor and dissipates nothing.
    delivered = 0.5 * c * 0.25 * (math.exp(2 * T / c) - 1) * PhysicalDesign().energy_j
    assert report.energy_delivered_j == pytest.approx(delivered, rel=1e-5)  # trapezoid error
    assert report.energy_dissipated_j == 0.0
    assert report.energy_j == pytest.approx(report.energy_load_j + delivered, rel=1e-5)


@pytest.mark.parametrize("device", ["ShiftTanh2", "ShiftTanh1", "ShiftRelu1", "ShiftLeakyRelu2", "Conductance"])
def test_energy_is_non_negative_and_conserved(device):
    circuit = small_circuit(device, num_nodes=5, slices=2).double()
    x = torch.randn(16, 4, dtype=torch.float64)
    report = analyze(circuit, x, solver=kn.Solver(rtol=1e-7, atol=1e-7), points_per_slice=401)
    for name in ("energy_j", "energy_load_j", "energy_delivered_j", "energy_dissipated_j", "energy_rail_bound_j"):
        assert getattr(report, name) >= 0.0, name
    # Σ_e i_e (v_src − v_dst) = −d/dt Σ ½ c v²: heat − delivered = stored energy lost, up to the
    # trapezoid rule's O(h²) error on 401 points (kinks of relu devices make it first order locally).
    assert report.energy_balance_residual < 1e-3


def test_latency_is_linear_in_capacitance_and_energy_independent_of_conductance():
    circuit = small_circuit(num_nodes=4, slices=3)
    x = torch.randn(8, 3)
    found = measure(circuit, x, points_per_slice=51)
    base = found.report(PhysicalDesign(capacitance_f=1e-12, conductance_s=1e-3))
    bigger_c = found.report(PhysicalDesign(capacitance_f=7e-12, conductance_s=1e-3))
    bigger_g = found.report(PhysicalDesign(capacitance_f=1e-12, conductance_s=4e-3))
    assert bigger_c.latency_s == pytest.approx(7 * base.latency_s, rel=1e-12)  # τ = C/G
    assert bigger_g.latency_s == pytest.approx(base.latency_s / 4, rel=1e-12)
    assert bigger_c.energy_j == pytest.approx(7 * base.energy_j, rel=1e-12)  # E = C·V²·(normalised energy)
    assert bigger_g.energy_j == pytest.approx(base.energy_j, rel=1e-12)
    assert bigger_g.peak_total_current_a == pytest.approx(4 * base.peak_total_current_a, rel=1e-12)  # I = G·V·i
    assert base.latency_s == pytest.approx((3.0 + 5.0) * 1e-9, rel=1e-12)  # 3 slices of 1 τ + 5 τ settling


def test_latency_measured_twice_is_linear_in_capacitance():
    circuit = small_circuit(num_nodes=4, slices=2)
    x = torch.randn(4, 3)
    reports = [analyze(circuit, x, PhysicalDesign(capacitance_f=c), points_per_slice=21) for c in (1e-15, 1e-12, 1e-9)]
    latencies = [r.latency_s for r in reports]
    assert latencies[1] == pytest.approx(1e3 * latencies[0], rel=1e-12)
    assert latencies[2] == pytest.approx(1e3 * latencies[1], rel=1e-12)


def test_supply_violation_is_located_in_slice_node_and_time():
    # v = 0.5·e^t crosses 1 V at t = ln 2 and reaches 0.5·e² at t = 2.
    circuit = one_node(-1.0, 1.0, 2.0)
    found = measure(circuit, torch.tensor([[0.5]], dtype=torch.float64), solver=TIGHT, points_per_slice=201)
    report = found.report(PhysicalDesign(supply_v=(-1.0, 1.0)))
    assert not report.within_supply and report.num_violations == 1
    (violation,) = report.violations
    assert (violation.slice, violation.node, violation.sample) == (0, 1, 0)
    assert abs(violation.time_s - math.log(2) * 1e-9) <= 0.01e-9  # first grid point past ln 2 (grid step 0.01 τ)
    assert violation.voltage_v == pytest.approx(0.5 * math.exp(2), rel=1e-8)
    fit = report.voltage_scale_to_fit_v
    assert fit == pytest.approx(1 / (0.5 * math.exp(2)), rel=1e-8)
    assert found.report(PhysicalDesign(voltage_v=fit * (1 - 1e-9))).within_supply
    assert not found.report(PhysicalDesign(voltage_v=fit * 1.01)).within_supply


def test_nodes_filled_by_repeat_cost_loading_energy():
    # Slice 0 holds node 1; slice 1 adds node 2, filled with node 1's voltage. Zero conductances: nothing moves.
    first = kn.Slice(torch.tensor([[1], [0]]), "Conductance", params=torch.zeros(1, 1))
    second = kn.Slice(torch.tensor([[1, 2], [0, 0]]), "Conductance", params=torch.zeros(1, 2))
    circuit = kn.Circuit([first, second], fill="repeat")
    report = analyze(circuit, torch.tensor([[0.6]]), points_per_slice=11)
    assert report.energy_load_j == pytest.approx(2 * 0.36 * PhysicalDesign().energy_j, rel=1e-6)  # c·v² per node
    assert report.energy_dissipated_j == 0.0


def test_report_of_an_original_flow(original_dir):
    flow = kn.compat.load_original(original_dir("twomoon"))
    report = analyze(flow, torch.randn(16, 2), PhysicalDesign(capacitance_f=1e-12), points_per_slice=51)
    assert report.num_devices == 600 and report.devices_per_slice == [300, 300]
    assert report.latency_s == pytest.approx(6e-9)  # slices over t ∈ [0, 1] at τ = 1 ns, plus 5 τ settling
    assert report.energy_balance_residual < 1e-2  # 51 points per slice: coarse but consistent
    json.dumps(report.to_dict(), allow_nan=False)  # the report is valid JSON


def test_analysis_errors():
    with pytest.raises(ConfigError, match="expected a Circuit, Flow or Network, got Linear"):
        analyze(torch.nn.Linear(2, 2), torch.zeros(1, 2))
    circuit = one_node(1.0, 1.0, 1.0)
    found = measure(circuit, torch.tensor([[-0.5]], dtype=torch.float64), points_per_slice=5)
    with pytest.raises(ConfigError, match="settling_time_constants must be finite and >= 0, got -1"):
        found.report(PhysicalDesign(), settling_time_constants=-1.0)
    with pytest.raises(ConfigError, match="cannot reach both signs"):
        found.voltage_scale_to_fit((0.0, 1.8))

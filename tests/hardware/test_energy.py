"""One energy account: an inference (``hardware.analysis``) and a score circuit's generation
(``diffusion.circuit_run``) integrate the same ``Slice.power`` and agree on the same circuit."""

from __future__ import annotations

import math

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.diffusion.circuit_run import measure_generation, physical_report
from kirchhoffnet.diffusion.score_circuit.circuit import ScoreCircuit
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware import PhysicalDesign, analyze
from kirchhoffnet.hardware.energy import latency

G_IN, G_GROUND, LEAK, GAIN = 0.25, 0.3, 1.0, 1.6
"""A linear score circuit: data node —G_IN— hidden node —LEAK— ground, and data —G_GROUND— ground; sampled with
velocity gain k, i.e. a data capacitor C_x = 1/k."""


def linear_score_circuit() -> CircuitScoreModel:
    circuit = ScoreCircuit(
        dim=1, hidden=1, time_nodes=2, repeat=1, device="Conductance", leak=LEAK, settle_steps=30, contraction=None
    )
    # score_topology's edges: data→hidden, 2 × time→hidden, data→ground, 2 × data→time (the sources disconnected)
    with torch.no_grad():
        circuit.edges.params.copy_(torch.tensor([[G_IN, 0.0, 0.0, G_GROUND, 0.0, 0.0]]))
    return CircuitScoreModel(circuit, VPSDE(), velocity_gain=GAIN)


def test_a_linear_score_circuit_is_an_rc_discharge_in_both_accounts():
    # With the hidden node settled, the data capacitor C_x = 1/k sees one conductance G = G_IN‖LEAK + G_GROUND:
    # an RC discharge, which dissipates ½ C_x x0² (1 − e^{−2GT/C_x}) over the transient T = 1 − s_min.
    model, n, steps, seed = linear_score_circuit(), 64, 1000, 3
    conductance = G_IN * LEAK / (G_IN + LEAK) + G_GROUND
    c_x, duration = 1 / GAIN, 1 - model.sde.s_min
    design = PhysicalDesign(capacitance_f=2e-12, voltage_v=0.4)
    generation = physical_report(measure_generation(model, n, steps, seed), design)

    x0 = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed))  # the generation's starting points
    mean_sq = float(x0.double().square().mean())
    heat = 0.5 * c_x * mean_sq * (1 - math.exp(-2 * conductance * duration / c_x)) * design.energy_j
    # The generation integrates by the rectangle rule: exactly a geometric series of the Euler steps.
    dt = duration / steps
    ratio = (1 - GAIN * conductance * dt) ** 2
    stepped = dt * conductance * mean_sq * (1 - ratio**steps) / (1 - ratio) * design.energy_j
    assert generation["energy_dissipated_j"] == pytest.approx(stepped, rel=1e-5)
    assert generation["energy_dissipated_j"] == pytest.approx(heat, rel=2e-3)  # first order in dt
    assert generation["energy_delivered_j"] == 0.0  # conductances never deliver
    assert generation["energy_load_j"] == pytest.approx(c_x * mean_sq * design.energy_j, rel=1e-6)

    # The same RC circuit as a one-node KirchhoffNet inference, through hardware.analysis.
    rc = kn.Circuit(
        [kn.Slice(torch.tensor([[1], [0]]), "Conductance", capacitance=c_x, params=torch.tensor([[conductance]]))],
        times=(0.0, duration),
    ).double()
    inference = analyze(rc, x0.double(), design, solver=kn.Solver(rtol=1e-10, atol=1e-10), points_per_slice=401)
    assert inference.energy_dissipated_j == pytest.approx(heat, rel=1e-5)
    assert inference.energy_dissipated_j == pytest.approx(generation["energy_dissipated_j"], rel=2e-3)
    for name in ("energy_j", "energy_load_j", "energy_delivered_j"):
        assert getattr(inference, name) == pytest.approx(generation[name], rel=1e-6, abs=1e-30), name


def test_one_latency_rule():
    design = PhysicalDesign(capacitance_f=3e-12, conductance_s=2e-3)
    settling_s, latency_s = latency(0.999, 0.01, 5.0, design)
    assert settling_s == pytest.approx(5 * 0.01 * 1.5e-9) and latency_s == pytest.approx((0.999 + 0.05) * 1.5e-9)
    generation = physical_report(measure_generation(linear_score_circuit(), 4, 5), design)
    assert (generation["settling_s"], generation["latency_s"]) == pytest.approx(latency(0.999, 0.01 / LEAK, 5, design))
    with pytest.raises(ConfigError, match="settling_time_constants must be finite"):
        latency(1.0, 1.0, math.nan, design)

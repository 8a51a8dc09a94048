"""Transistor-level MosRelu edges in ngspice: the fit, the I-V departure, whole circuits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.errors import ConfigError, DeviceError
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.spice import SpiceOptions, slice_netlist, verify
from kirchhoffnet.spice.mos import (
    MosTechnology,
    TransistorRelu,
    characterise,
    fit_transistors,
    iv_departure,
    level1_card,
    model_iv_departure,
)

pytestmark = [pytest.mark.needs_ngspice, pytest.mark.usefixtures("one_torch_thread")]

LEVEL1 = MosTechnology(model_card=level1_card(threshold_v=0.7, kp_a_per_v2=2e-4, lambda_per_v=0.05))
BSIM4 = MosTechnology(model_card=".model nch nmos (level=14 version=4.8.1)", model_name="nch")
GAINS = np.array([1.0, -0.5, 2.0, 0.3])
SHIFTS = np.array([0.2, 0.1, -0.5, 0.0])


def test_characterisation_recovers_the_level1_card():
    found = characterise(LEVEL1, drain_voltage_v=0.1)
    # K = KP·(1 + λ·V_DS); exact up to the finite-difference slope of a straight line (~1e-12).
    assert found.transconductance_a_per_v2 == pytest.approx(2e-4 * (1 + 0.05 * 0.1), rel=1e-9)
    assert found.threshold_v == pytest.approx(0.7, abs=1e-8)


def test_fit_maps_gain_to_width_and_shift_to_bias():
    found = characterise(LEVEL1, drain_voltage_v=0.1)
    fit = fit_transistors(GAINS, SHIFTS, LEVEL1, found)
    k = found.transconductance_a_per_v2
    np.testing.assert_allclose(
        fit.width_m / fit.length_m * k * 0.1, np.abs(GAINS) * 1e-4, rtol=1e-12
    )  # β·V_DS = |θ1|·I
    np.testing.assert_allclose(fit.gate_bias_v, found.threshold_v + 0.05 + SHIFTS / np.abs(GAINS), rtol=1e-12)
    np.testing.assert_array_equal(fit.polarity, [1, -1, 1, 1])
    assert fit.to_dict()["width_over_length_max"] == pytest.approx(2.0 * 1e-4 / (k * 0.1))


def test_level1_edges_are_the_mosrelu_model():
    report = iv_departure(GAINS, SHIFTS, LEVEL1, drain_voltage_v=0.1)
    # Transistor and model are the same law; what is left is junction leakage and gmin (~1e-13 A).
    assert report.max_abs_error_model < 1e-6
    # The departure from the ideal ReLU is the rounded corner: δ/8 = max|θ1|·V_DS/8 at u = 0.
    assert report.max_abs_error_ideal == pytest.approx(2.0 * 0.1 / 8, rel=1e-3)
    assert report.rms_error_ideal < report.max_abs_error_ideal
    assert report.measured.shape == (401, 4) and report.peak_current == pytest.approx(3.5)


def test_bsim4_departs_measurably(tmp_path):
    """BSIM4's mobility degradation bends the triode line: the simulator's MosRelu misses it."""
    report = iv_departure(GAINS, SHIFTS, BSIM4, drain_voltage_v=0.1, points=81)
    assert 0.05 * report.peak_current < report.max_abs_error_ideal < report.peak_current  # observed 1.06 of 3.5
    assert report.max_abs_error_model > 0.05 * report.peak_current
    assert save_figure(report.figure(), tmp_path / "iv.png").read_bytes()[:4] == b"\x89PNG"


def test_transistor_circuit_agrees_with_the_simulator():
    edges = kn.topology.random_graph(11, 40, seed=0)
    circuit = kn.Circuit(edges, "MosRelu", slices=2, times=(0.0, 0.5, 1.0), init="gauss")
    with torch.no_grad():
        for piece in circuit.slices:
            piece.params.normal_(0.0, 0.5)
    report = verify(circuit, 2, realisation=TransistorRelu(LEVEL1), jobs=2)
    assert report.max_abs_error_v <= 1e-3  # observed 2.3e-5 V, as with behavioural sources
    assert report.peak_abs_voltage_v > 1.0


def test_gain_clamps_reach_the_transistors_and_the_behavioural_export():
    """A clamped MosRelu circuit whose gains lie outside [gain_min, gain_max]: the transistors get the clamped
    widths, and both the transistor and the behavioural decks agree with kirchhoffnet's clamped law."""
    edges = kn.topology.random_graph(7, 16, seed=1)
    device = kn.devices.MosRelu(0.1, gain_min=0.3, gain_max=1.5)
    circuit = kn.Circuit(kn.Slice(edges, device))
    with torch.no_grad():
        circuit.slice(0).params.copy_(torch.tensor([[0.01, -0.02, 4.0, -3.0] * 4, [-0.1] * 16]))
    fit = TransistorRelu(LEVEL1).fit(circuit.slice(0))
    widths = fit.width_m / fit.width_m.min()
    np.testing.assert_allclose(widths[:4], [1.0, 1.0, 5.0, 5.0], rtol=1e-12)  # 0.3 and 1.5: the clamps
    for realisation in (TransistorRelu(LEVEL1), None):
        report = verify(circuit, 2, realisation=realisation)
        assert report.max_abs_error_v <= 1e-3 * max(report.peak_abs_voltage_v, 1.0), realisation


def test_transistor_netlist_scales_capacitors_and_instantiates_the_subcircuit():
    piece = kn.Slice(kn.topology.chain(3), kn.devices.MosRelu(0.2), capacitance=2.0)
    deck = slice_netlist(piece, torch.zeros(1, 2), 1.0, SpiceOptions(), "t", TransistorRelu(LEVEL1))
    assert "C1 n1 0 0.0002 IC=0.0" in deck  # 2 normalised units × 1e-4 A per unit
    assert ".subckt kn_mosrelu s d params:" in deck and "Vd dd 0 0.2" in deck
    assert sum(line.startswith("X") for line in deck.splitlines()) == 2


def test_errors():
    piece = kn.Slice(kn.topology.chain(3), "ShiftRelu1")
    with pytest.raises(DeviceError, match="realises MosRelu edges, but this slice uses ShiftRelu1"):
        TransistorRelu(LEVEL1).fit(piece)
    with pytest.raises(ConfigError, match=r"model_card defines no '.model kn_nmos nmos ...'"):
        MosTechnology(model_card=".model other nmos (level=1)")
    with pytest.raises(ConfigError, match=r"MosTechnology.length_m must be positive, got 0.0"):
        MosTechnology(length_m=0.0)
    with pytest.raises(ConfigError, match=r"gain and shift must be matching 1-D arrays, got shapes \(2,\) and \(3,\)"):
        iv_departure(np.ones(2), np.ones(3), LEVEL1)
    with pytest.raises(ConfigError, match="drop_range_v must increase"):
        iv_departure(np.ones(1), np.ones(1), LEVEL1, drop_range_v=(1.0, -1.0))
    dead = MosTechnology(model_card=level1_card(threshold_v=10.0))
    with pytest.raises(DeviceError, match=r"conducts no current \(at most .* A\) for V_GS up to 3.0 V"):
        characterise(dead, 0.1)


def test_model_iv_departure_needs_one_mos_bias():
    slices = [kn.Slice(kn.topology.chain(3), kn.devices.MosRelu(v)) for v in (0.1, 0.2)]
    with pytest.raises(DeviceError, match=r"different MosRelu drain biases \[0.1, 0.2\] V"):
        model_iv_departure(kn.Circuit(slices), LEVEL1)
    report = model_iv_departure(kn.Circuit(slices[:1]), LEVEL1, edges_per_slice=1, points=21)
    assert report.measured.shape == (21, 1)

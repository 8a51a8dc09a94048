"""The netlist writer: each edge's SPICE expression is the device's own current law."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.devices import AffineActivation
from kirchhoffnet.errors import ConfigError, DeviceError
from kirchhoffnet.spice import SpiceOptions, slice_netlist
from kirchhoffnet.spice.netlist import as_circuit
from tests.conftest import small_circuit

AFFINE = [name for name in kn.devices.available() if issubclass(kn.devices.Device.registry[name], AffineActivation)]


def _elements(deck: str, kind: str) -> list[list[str]]:
    return [line.split(" ", 3) for line in deck.splitlines() if line.startswith(kind)]


def _spice_eval(expression: str, volts: dict[str, float]) -> float:
    """Evaluate a behavioural-source expression: its syntax is Python's here (no ^ or **: squares are products)."""
    functions = {"tanh": math.tanh, "max": max, "min": min, "v": lambda value: value}
    return eval(expression, {"__builtins__": {}}, {**functions, **volts})


@pytest.mark.parametrize("family", AFFINE)
def test_expressions_reproduce_the_device_currents(family):
    circuit = small_circuit(family, num_nodes=4, slices=1)  # includes edges to and from ground
    piece = circuit.slice(0).to(torch.float64)
    v = torch.randn(1, piece.num_state, dtype=torch.float64) * 2
    deck = slice_netlist(piece, v, 1.0, SpiceOptions(), "test")
    volts = {f"n{n}": float(v[0, n - 1]) for n in range(1, piece.num_nodes)}
    sources = _elements(deck, "B")
    assert len(sources) == piece.num_edges
    expected = piece.currents(v)[0].detach()
    for name, src, dst, current in sources:
        e = int(name[1:])
        assert [src, dst] == [("0" if n == 0 else f"n{n}") for n in piece.edge_index[:, e].tolist()]
        # Coefficients are written with 17 significant digits: agreement to rounding.
        assert _spice_eval(current.removeprefix("I="), volts) == pytest.approx(float(expected[e]), rel=1e-12, abs=1e-14)


def test_leaky_slope_is_written():
    circuit = small_circuit("ShiftLeakyRelu1", num_nodes=3, slices=1)
    circuit.slice(0).device_family.negative_slope = 0.25
    deck = slice_netlist(circuit.slice(0), torch.zeros(1, 2), 1.0, SpiceOptions(), "t")
    assert "+0.25*min(" in deck


def test_capacitors_carry_capacitance_and_exact_initial_voltages():
    caps = torch.tensor([1.0, 0.25, 3.0], dtype=torch.float64)
    piece = kn.Slice(kn.topology.fully_connect(4), "ShiftTanh2", capacitance=caps)
    init = torch.tensor([[0.1, -1.0 / 3.0, 2.5e-7]], dtype=torch.float64)
    deck = slice_netlist(piece, init, 0.5, SpiceOptions(), "caps")
    capacitors = _elements(deck, "C")
    assert [(c[0], c[1], c[2]) for c in capacitors] == [("C1", "n1", "0"), ("C2", "n2", "0"), ("C3", "n3", "0")]
    values = [(float(c[3].split(" IC=")[0]), float(c[3].split(" IC=")[1])) for c in capacitors]
    assert values == list(zip(caps.tolist(), init[0].tolist(), strict=True))  # exact round trip
    assert ".tran 0.005 0.5 0 0.001 uic" in deck  # 101 points, max step 2e-3 of the slice


def test_replicas_are_disjoint_copies():
    circuit = small_circuit("ShiftTanh1", num_nodes=3, slices=1)
    init = torch.randn(3, 2)
    deck = slice_netlist(circuit.slice(0), init, 1.0, SpiceOptions(), "replicas")
    sources = _elements(deck, "B")
    assert len(sources) == 3 * circuit.slice(0).num_edges
    for name, src, dst, current in sources:
        k = name.split("_")[1]
        nodes = set(re.findall(r"v\((\w+)\)", current)) | {src, dst}
        assert nodes <= {f"n1_{k}", f"n2_{k}", "0"}
    ics = [float(c[3].split("IC=")[1]) for c in _elements(deck, "C")]
    np.testing.assert_allclose(ics, init.double().reshape(-1).numpy(), rtol=1e-7)  # float32 inputs, exact repr


def test_options_are_written():
    options = SpiceOptions(reltol=1e-5, abstol=1e-11, vntol=1e-7, method="gear", points=11, max_step_fraction=0.05)
    deck = slice_netlist(small_circuit(num_nodes=3, slices=1).slice(0), torch.zeros(1, 2), 2.0, options, "o")
    assert ".options reltol=1e-05 abstol=1e-11 vntol=1e-07 chgtol=1e-16 trtol=1.0 method=gear" in deck
    assert ".tran 0.2 2.0 0 0.1 uic" in deck  # step 2/10, max step min(step, 0.05·2)
    assert deck.rstrip().endswith(".end")


class _NoSpice(AffineActivation):
    """An affine family without a SPICE form (no param_names: it does not register)."""

    def activation(self, u, inplace):
        return u

    def slope(self, out):
        return torch.ones_like(out)

    def coefficients(self, p):
        return None, None, None, None


class _NotAffine(kn.devices.Device):
    def current(self, v_src, v_dst, p, scratch=False):
        return v_src - v_dst


def test_families_without_a_spice_form_are_refused():
    edges = kn.topology.chain(3)
    piece = kn.Slice(edges, _NoSpice(), params=torch.empty(0, 2))
    with pytest.raises(DeviceError, match="_NoSpice cannot be exported to SPICE: it defines no spice_activation"):
        slice_netlist(piece, torch.zeros(1, 2), 1.0, SpiceOptions(), "x")
    piece = kn.Slice(edges, _NotAffine(), params=torch.empty(0, 2))
    with pytest.raises(DeviceError, match="_NotAffine is not an activation of an affine voltage combination"):
        slice_netlist(piece, torch.zeros(1, 2), 1.0, SpiceOptions(), "x")


def test_bad_parameters_and_initial_voltages_are_refused():
    piece = small_circuit(num_nodes=3, slices=1).slice(0)
    with pytest.raises(
        ConfigError, match=r"initial voltages must have shape \(samples, 2\) for this slice, got \(2,\)"
    ):
        slice_netlist(piece, torch.zeros(2), 1.0, SpiceOptions(), "x")
    with pytest.raises(ConfigError, match="initial voltages hold NaN"):
        slice_netlist(piece, torch.tensor([[0.0, math.nan]]), 1.0, SpiceOptions(), "x")
    with torch.no_grad():
        piece.params[0, 0] = math.inf
    with pytest.raises(DeviceError, match="ShiftTanh2 parameters hold NaN or infinite values"):
        slice_netlist(piece, torch.zeros(1, 2), 1.0, SpiceOptions(), "x")


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"method": "euler"}, "unknown ngspice integration method 'euler'; choose one of: gear, trap"),
        ({"reltol": 0.0}, r"SpiceOptions.reltol must be a positive number, got 0.0"),
        ({"timeout_s": math.nan}, "SpiceOptions.timeout_s must be a positive number"),
        ({"max_step_fraction": 2.0}, "max_step_fraction must be at most 1, got 2.0"),
        ({"points": 1}, "SpiceOptions.points must be at least 2, got 1"),
    ],
)
def test_bad_options_are_refused(settings, match):
    with pytest.raises(ConfigError, match=match):
        SpiceOptions(**settings)


def test_models_are_unwrapped_to_their_circuit():
    circuit = small_circuit(num_nodes=3)
    assert as_circuit(kn.Flow(circuit)) is circuit
    assert as_circuit(kn.Network(circuit)) is circuit
    with pytest.raises(ConfigError, match="expected a kirchhoffnet Circuit, Flow or Network, got str"):
        as_circuit("model.safetensors")

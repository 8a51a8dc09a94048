"""One deck for a whole network: ngspice alone, from the inputs, reaches kirchhoffnet's output at T."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.devices import AffineActivation
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.spice import export_network_deck, find_ngspice
from kirchhoffnet.spice.network_deck import network_layout, readout_nodes
from kirchhoffnet.spice.verify import REFERENCE_SOLVER
from tests.spice.grammar import GrammarError, check_spice

AFFINE = [name for name in kn.devices.available() if issubclass(kn.devices.Device.registry[name], AffineActivation)]
OF_SWING = 1e-4  # the largest error allowed, as a fraction of the outputs' swing


def layered(device: str, widths: list[int], **kwargs) -> kn.Circuit:
    """A circuit whose slice k is fully connected over ``widths[k]`` state nodes, random gains of order 1."""
    torch.manual_seed(len(widths) * 10 + sum(widths))
    edges = [kn.topology.fully_connect(w + 1, (1, 1)) for w in widths]
    circuit = kn.Circuit(edges, device, times=[0.4 * k for k in range(len(widths) + 1)], init="gauss", **kwargs)
    with torch.no_grad():
        for piece in circuit.slices:
            piece.params.normal_(0.0, 0.7)
    return circuit


def measured(deck, samples: int, outputs: int) -> np.ndarray:
    """The deck's ``out<i>[_<s>]`` measurements, (samples, outputs), from ``ngspice -b``."""
    done = subprocess.run(
        [find_ngspice(), "-b", deck.name], cwd=deck.parent, capture_output=True, text=True, timeout=120, check=True
    )
    values = dict(re.findall(r"^(out\d+(?:_\d+)?)\s*=\s*(\S+)", done.stdout, re.MULTILINE))
    names = [[f"out{i}" + (f"_{s}" if samples > 1 else "") for i in range(outputs)] for s in range(samples)]
    return np.array([[float(values[n]) for n in row] for row in names])


def worst_error(model, x, tmp_path) -> float:
    """The largest |ngspice − kirchhoffnet| over the readout, as a fraction of its swing."""
    deck = export_network_deck(model, x, tmp_path / "net.cir")[0]
    circuit = model.circuit if isinstance(model, kn.Network) else model
    with torch.no_grad():
        v, _ = kn.simulate(circuit.to(torch.float64), x, solver=REFERENCE_SOLVER)
    reference = v[:, readout_nodes(model, v.shape[1])].numpy()
    got = measured(deck, len(x), reference.shape[1])
    return float(np.abs(got - reference).max() / (reference.max() - reference.min()))


@pytest.mark.needs_ngspice
@pytest.mark.parametrize(
    "family",
    # ngspice takes 30-60 s over the table family's deck (its spline sources at the reference tolerance): the slow
    # run covers it here; tests/spice/test_tabulate.py verifies a table network in ngspice by default
    [pytest.param(f, marks=pytest.mark.slow) if f == "TransistorTable" else f for f in AFFINE],
)
def test_two_slices_that_grow_match_kirchhoffnet(family, tmp_path):
    x = torch.randn(2, 2, dtype=torch.float64)
    assert worst_error(layered(family, [2, 3]), x, tmp_path) < OF_SWING


@pytest.mark.needs_ngspice
@pytest.mark.parametrize("widths", [[3], [3, 4, 2, 4]])
def test_one_and_four_slices_with_dropped_and_regrown_nodes(widths, tmp_path):
    x = torch.randn(2, 3, dtype=torch.float64)
    assert worst_error(layered("ShiftTanh2", widths), x, tmp_path) < OF_SWING


@pytest.mark.slow
@pytest.mark.needs_ngspice
@pytest.mark.parametrize("family", AFFINE)
@pytest.mark.parametrize("widths", [[3], [3, 2], [3, 4, 2, 4]])
def test_every_family_on_one_two_and_four_slices(family, widths, tmp_path):
    x = torch.randn(3, 3, dtype=torch.float64)
    assert worst_error(layered(family, widths), x, tmp_path) < OF_SWING


@pytest.mark.needs_ngspice
def test_a_networks_readout_nodes_are_measured(tmp_path):
    network = kn.Network(layered("ShiftRelu2", [3, 4]), readout="last2")
    x = torch.randn(1, 3, dtype=torch.float64)
    assert worst_error(network, x, tmp_path) < OF_SWING
    deck = (tmp_path / "net.cir").read_text()
    assert ".meas tran out0 FIND v(n3) AT=0.8" in deck and ".meas tran out1 FIND v(n4s1) AT=0.8" in deck


def test_regrown_nodes_are_fresh_zero_nodes_and_dropped_ones_stay_out(tmp_path):
    layout = network_layout(layered("ShiftTanh2", [3, 4, 2, 4]))
    assert layout.nodes == [
        ["n1", "n2", "n3"],
        ["n1", "n2", "n3", "n4s1"],
        ["n1", "n2"],
        ["n1", "n2", "n3s3", "n4s3"],
    ]
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    main, _, ics = export_network_deck(layered("ShiftTanh2", [3, 4, 2, 4]), x, tmp_path / "net.cir")
    assert ics.read_text().splitlines()[1:] == [
        ".ic v(n1)=1.0",
        ".ic v(n2)=2.0",
        ".ic v(n3)=3.0",
        ".ic v(n4s1)=0.0",
        ".ic v(n3s3)=0.0",
        ".ic v(n4s3)=0.0",
    ]
    deck = main.read_text()
    assert "Vgate0 g0 0 PWL(0.0 1.0 0.3999996 1.0 0.40000040000000003 0.0 1.6 0.0)" in deck
    # the largest step is 2e-3 of a 0.4 s slice, the ramps 1e-3 of it, centred on 0.4 s and 0.8 s
    assert (
        "Vgate1 g1 0 PWL(0.0 0.0 0.3999996 0.0 0.40000040000000003 1.0 0.7999996 1.0 0.8000004000000001 0.0 1.6 0.0)"
        in deck
    )
    assert "Xs1e0 0 n1 g1 ShiftTanh2" in deck and "Xnet n1 n2 n3 n4s1 n3s3 n4s3 g0 g1 g2 g3 kn_network" in deck


def test_input_nodes_place_the_inputs(tmp_path):
    circuit = layered("ShiftTanh2", [3, 3], input_nodes=[3])
    ics = export_network_deck(circuit, torch.tensor([[0.5]]), tmp_path / "net.cir")[2]
    assert ics.read_text().splitlines()[1:] == [".ic v(n1)=0.0", ".ic v(n2)=0.0", ".ic v(n3)=0.5"]


def _grown_capacitance() -> kn.Circuit:
    circuit = layered("ShiftTanh2", [2, 2])
    with torch.no_grad():
        circuit.slice(1).capacitance.mul_(2.0)
    return circuit


@pytest.mark.parametrize(
    ("circuit", "problem"),
    [
        (lambda: layered("ShiftTanh2", [2, 2], residual=(0, 1)), "residual"),
        (lambda: layered("ShiftTanh2", [2, 3], fill="repeat"), "fill='repeat'"),
        (_grown_capacitance, "a capacitor cannot change value"),
    ],
)
def test_what_no_circuit_element_represents_is_refused(circuit, problem, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(problem)):
        export_network_deck(circuit(), torch.zeros(1, 2), tmp_path / "net.cir")


def test_repeat_fill_is_fine_when_no_slice_grows(tmp_path):
    written = export_network_deck(layered("ShiftTanh2", [3, 2], fill="repeat"), torch.zeros(1, 3), tmp_path / "a.cir")
    assert [p.name for p in written] == ["a.cir", "a.params.inc", "a.ic.inc"]


@pytest.mark.parametrize("simulator", ["xyce", "spectre"])
def test_simulators_without_a_checked_unit_step_are_refused(simulator, tmp_path):
    with pytest.raises(ConfigError, match="ngspice and LTspice only"):
        export_network_deck(layered("ShiftTanh2", [2, 2]), torch.zeros(1, 2), tmp_path / "net.cir", simulator=simulator)


@pytest.mark.parametrize("simulator", ["ngspice", "ltspice"])
def test_the_deck_uses_only_statements_the_manual_defines(simulator, tmp_path):
    circuit = layered("MosRelu", [2, 3, 1, 3])
    main = export_network_deck(circuit, torch.zeros(2, 2), tmp_path / "net.cir", simulator=simulator)[0]
    kinds = check_spice(main, simulator)
    assert kinds.count("pwl") == 4 and kinds.count("meas") == 6 and kinds[-1] == "end"


def test_the_checker_rejects_a_gate_whose_times_go_back(tmp_path):
    deck = tmp_path / "bad.cir"
    deck.write_text("* title\nVgate0 g0 0 PWL(0.0 1.0 0.5 1.0 0.5 0.0)\n.end\n")
    with pytest.raises(GrammarError, match="increasing times"):
        check_spice(deck, "ngspice")


@pytest.mark.needs_ngspice
def test_slices_of_different_families_and_settings_each_get_their_subcircuit(tmp_path):
    torch.manual_seed(3)
    devices = ["ShiftTanh2", {"name": "ShiftLeakyRelu2", "negative_slope": 0.01}]
    devices.append({"name": "ShiftLeakyRelu2", "negative_slope": 0.3})
    edges = kn.topology.fully_connect(4, (1, 1))
    circuit = kn.Circuit([kn.circuit.Slice(edges, d, init="gauss") for d in devices], times=[0.0, 0.3, 0.6, 0.9])
    x = torch.randn(2, 3, dtype=torch.float64)
    assert worst_error(circuit, x, tmp_path) < OF_SWING
    deck = (tmp_path / "net.cir").read_text()
    assert ".subckt ShiftLeakyRelu2 " in deck and ".subckt ShiftLeakyRelu2_1 " in deck
    assert "Xs2e0 0 n1 g2 ShiftLeakyRelu2_1 " in deck


def test_readout_nodes_follow_first_last_and_otherwise_all():
    circuit = layered("ShiftTanh2", [3, 4])
    assert readout_nodes(kn.Network(circuit, readout="first1"), 4) == [0]
    assert readout_nodes(kn.Network(circuit, readout="last2"), 4) == [2, 3]
    linear = {"name": "linear", "in_nodes": 4, "out_features": 2}
    assert readout_nodes(kn.Network(circuit, readout=linear), 4) == readout_nodes(circuit, 4) == [0, 1, 2, 3]


def test_inputs_that_are_not_finite_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="must be finite"):
        export_network_deck(layered("ShiftTanh2", [2]), torch.full((1, 2), float("nan")), tmp_path / "net.cir")

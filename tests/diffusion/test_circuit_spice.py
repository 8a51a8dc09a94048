"""The score circuit's SPICE deck: its structure, our transient reference, and ngspice agreeing with both."""

from __future__ import annotations

import re

import pytest
import torch

from kirchhoffnet.diffusion.circuit_spice import circuit_transient, score_circuit_netlist, verify_score_circuit
from kirchhoffnet.diffusion.score_circuit.sample import circuit_pf_ode
from kirchhoffnet.errors import ConfigError

from .test_circuit_score import conditional, passive, tiny


def test_deck_holds_every_element_of_the_circuit():
    model = tiny(settle_steps=20).sharpened(1.5)
    x0 = torch.randn(2, 2, dtype=torch.float64)
    deck = score_circuit_netlist(model, x0, hidden_capacitance=0.02)
    circuit = model.circuit
    for k in range(2):
        lines = [line for line in deck.splitlines() if re.match(rf"^\w+_{k} ", line)]
        data = [line for line in lines if line.startswith("Cx")]
        assert len(data) == circuit.dim and all(" 0.6666666666666666 IC=" in line for line in data)  # C_x = 1/1.5
        assert sum(line.startswith("Ch") for line in lines) == circuit.hidden
        assert sum(line.startswith("Rh") and line.endswith(" 1.0") for line in lines) == circuit.hidden  # 1/g
        sources = [line for line in lines if line.startswith("Bt")]
        assert len(sources) == circuit.time_nodes and all("(1-time)" in line for line in sources)
        assert sum(re.match(r"^B\d", line) is not None for line in lines) == circuit.edges.num_edges
    # The hidden capacitors start at the settled equilibrium of s = 1, and the deck runs τ to 1 − s_min.
    first_hidden = float(re.search(r"^Ch3_0 n3_0 0 0.02 IC=(\S+)$", deck, re.M).group(1))
    with torch.no_grad():
        settled = circuit.settle(x0.t(), circuit.drive(torch.tensor(1.0, dtype=torch.float64)))
    assert first_hidden == pytest.approx(float(settled[0, 0]), abs=1e-12)
    assert f" {1 - model.sde.s_min!r} 0 " in deck


@pytest.mark.parametrize("kind", ["contraction", "passive"])
def test_transient_reference_agrees_with_the_circuit_sampler(kind):
    # The dopri5 transient and the sampler's linearly implicit Euler steps integrate the same circuit.
    model = tiny(settle_steps=20) if kind == "contraction" else passive(init_scale=1.5)
    x0 = torch.randn(5, 2, dtype=torch.float64)
    end = torch.tensor([0.0, 1.0 - model.sde.s_min], dtype=torch.float64)
    exact = circuit_transient(model, x0, 0.02, end)[-1, :, :2]
    euler = circuit_pf_ode(model, x0, steps=4000, hidden_capacitance=0.02)
    assert float((exact - euler).abs().max()) < 5e-3  # Euler's O(Δτ) error at 4000 steps


@pytest.mark.parametrize(
    ("x0", "capacitance", "match"),
    [
        (torch.randn(3, 3), 0.01, r"base samples must be a \(samples, 2\) tensor"),
        (torch.full((2, 2), float("nan")), 0.01, "NaN"),
        (torch.randn(2, 2), 0.0, "hidden capacitance must be positive"),
    ],
)
def test_bad_requests(x0, capacitance, match):
    with pytest.raises(ConfigError, match=match):
        score_circuit_netlist(tiny(), x0.double(), capacitance)


@pytest.mark.needs_ngspice
@pytest.mark.parametrize("kind", ["contraction", "passive"])
def test_ngspice_transient_matches_ours(kind):
    model = tiny(settle_steps=20) if kind == "contraction" else passive(init_scale=1.5)
    check, _ = verify_score_circuit(model, samples=3, hidden_capacitance=0.05)
    # Both integrate the same ODE to ~1e-9 (ngspice: reltol 1e-8); the print grid's interpolation of
    # the fast hidden start dominates what is left.
    assert check.max_abs_error_v < 1e-3 * max(1.0, check.voltage_range_v)
    assert check.final_abs_error_v < 1e-5
    assert check.max_hidden_error_v < 1e-3


def test_class_sources_are_dc_sources_holding_each_replicas_label():
    model = conditional()
    x0, labels = torch.randn(3, 2, dtype=torch.float64), torch.tensor([2, -1, 0])
    deck = score_circuit_netlist(model, x0, 0.02, labels=labels)
    circuit = model.circuit
    first = 3 + circuit.hidden + circuit.time_nodes  # node number of class 0
    for k, label in enumerate(labels.tolist()):
        held = re.findall(rf"^Vc(\d+)_{k} n\1_{k} 0 DC (\S+)$", deck, re.M)
        assert [(int(n), float(v)) for n, v in held] == [(first + j, float(j == label)) for j in range(3)]
    with pytest.raises(ConfigError, match="got 2 labels for 3 base samples"):
        score_circuit_netlist(model, x0, 0.02, labels=labels[:2])


def test_guided_deck_has_two_circuit_copies_and_mixes_their_data_currents():
    model = conditional()
    x0, labels = torch.randn(2, 2, dtype=torch.float64), torch.tensor([1, 2])
    deck = score_circuit_netlist(model, x0, 0.02, labels=labels, guidance=1.5)
    circuit = model.circuit
    for k, label in enumerate(labels.tolist()):
        for j in range(2):  # the labelled copy, then the unconditional one
            copy = [line for line in deck.splitlines() if re.match(rf"^\w+_{k}_c{j} ", line)]
            assert sum(line.startswith("Ch") for line in copy) == circuit.hidden
            assert sum(re.match(r"^B\d", line) is not None for line in copy) == circuit.edges.num_edges
            held = [float(line.split()[-1]) for line in copy if line.startswith("Vc")]
            assert held == [float(j == 0 and c == label) for c in range(3)]
        assert sum(line.startswith("Cx") and f"_{k} " in line for line in deck.splitlines()) == 2  # shared
        assert re.search(rf"^Bmix1_{k} n1_{k} 0 I=2.5\*i\(Vm1_{k}_c0\) \+ -1.5\*i\(Vm1_{k}_c1\)$", deck, re.M)


def test_guided_transient_reference_agrees_with_the_guided_sampler():
    model = conditional()
    x0, labels = torch.randn(5, 2, dtype=torch.float64), torch.arange(5) % 3
    end = torch.tensor([0.0, 1.0 - model.sde.s_min], dtype=torch.float64)
    waves = circuit_transient(model, x0, 0.02, end, labels, guidance=1.5)
    assert waves.shape == (2, 5, 2 + 2 * model.circuit.hidden)  # data, then each copy's hidden nodes
    euler = circuit_pf_ode(model, x0, steps=4000, hidden_capacitance=0.02, labels=labels, guidance=1.5)
    assert float((waves[-1, :, :2] - euler).abs().max()) < 5e-3


@pytest.mark.needs_ngspice
@pytest.mark.parametrize("guidance", [0.0, 1.5])
def test_ngspice_transient_of_a_conditional_circuit_matches_ours(guidance):
    check, deck = verify_score_circuit(conditional(), samples=3, hidden_capacitance=0.05, guidance=guidance)
    assert deck.count(" DC 1.0") == 3  # samples 0, 1, 2 generate classes 0, 1, 2 (the labelled copies)
    assert ("Bmix" in deck) == bool(guidance) and check.guidance == guidance
    assert check.final_abs_error_v < 1e-5 and check.max_hidden_error_v < 1e-3

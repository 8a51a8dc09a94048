"""ngspice against kirchhoffnet: the issue's 1e-3 V agreement on checkpoints and random circuits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.compat import load_original
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.spice import SpiceOptions, random_inputs, spice_trajectory, verify
from tests.conftest import small_circuit

pytestmark = [pytest.mark.needs_ngspice, pytest.mark.usefixtures("one_torch_thread")]

AGREEMENT_V = 1e-3  # the target for every checkpoint and ideal family
FAMILIES = [
    "ShiftTanh2",
    "ShiftTanh1",
    "ShiftRelu1",
    "ShiftRelu2",
    "ShiftLeakyRelu1",
    "ShiftLeakyRelu2",
    "Conductance",
    "MosRelu",
]


def _random_circuit(family: str, num_nodes: int, num_edges: int, times: tuple[float, ...]) -> kn.Circuit:
    """A random graph with gains of order 1, so voltages move by volts within a slice."""
    edges = kn.topology.random_graph(num_nodes + 1, num_edges, seed=3)
    circuit = kn.Circuit(edges, family, slices=len(times) - 1, times=times, init="gauss")
    with torch.no_grad():
        for piece in circuit.slices:
            piece.params.normal_(0.0, 0.5)
    return circuit


@pytest.mark.parametrize("name", ["twomoon", "8gaussians"])
def test_flow_checkpoints_agree(name, original_dir):
    flow = load_original(original_dir(name))
    report = verify(flow, 2, jobs=2)
    assert report.max_abs_error_v <= AGREEMENT_V  # observed ~8e-5 V (docs/spice.md)
    assert report.boundary_max_abs_error_v <= report.max_abs_error_v
    assert (report.nodes, report.slices, report.samples) == (2, flow.circuit.num_slices, 2)
    assert report.edges == 300 * flow.circuit.num_slices
    assert report.ngspice_runs == 2 * flow.circuit.num_slices
    # The waveforms move by volts: an agreement of 1e-3 V is not a trivially flat signal.
    assert max(float(np.ptp(w)) for w in report.ours) > 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_random_100_node_circuit_agrees(family):
    """A short slice keeps the default run fast; the full-size check is the slow test below."""
    circuit = _random_circuit(family, 100, 300, (0.0, 0.2))
    report = verify(circuit, 1, options=SpiceOptions(max_step_fraction=5e-3, points=41), jobs=2)
    assert report.nodes == 100 and report.edges == 300
    assert report.max_abs_error_v <= AGREEMENT_V
    assert max(float(np.ptp(w)) for w in report.ours) > 0.1  # the state does move


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_random_100_node_circuit_agrees_full_size(family):
    circuit = _random_circuit(family, 100, 400, (0.0, 0.5, 1.0))
    report = verify(circuit, 4, jobs=2)
    assert report.max_abs_error_v <= AGREEMENT_V  # observed 3e-6 (tanh) to 1.5e-4 V (conductance)


def test_state_is_handed_over_with_fill_and_residual():
    """Widths 2 → 4 → 4 with fill='repeat' and a residual from slice 1 to slice 2."""
    topologies = [kn.topology.fully_connect(3), kn.topology.fully_connect(5), kn.topology.fully_connect(5)]
    circuit = kn.Circuit(topologies, "ShiftTanh2", times=(0.0, 0.3, 0.6, 1.0), fill="repeat", residual=(1, 2))
    with torch.no_grad():
        for piece in circuit.slices:
            piece.params.normal_(0.0, 0.7)
    x = torch.randn(3, 2, dtype=torch.float64)
    spice = spice_trajectory(circuit, x, SpiceOptions(), samples_per_netlist=2, jobs=2)
    for s in range(3):
        end0 = spice.waves[0][s][1][-1]
        np.testing.assert_array_equal(spice.waves[1][s][1][0], np.tile(end0, 2))  # 'repeat' fill, exactly
        end1 = spice.waves[1][s][1][-1]
        start2 = spice.waves[2][s][1][0]
        np.testing.assert_array_equal(start2, end1)  # the residual is added to slice 2's end, not its start
        np.testing.assert_array_equal(spice.final[s], spice.waves[2][s][1][-1] + end1)
        assert spice.waves[2][s][0][0] == pytest.approx(0.6) and spice.waves[2][s][0][-1] == pytest.approx(1.0)
    ours, _ = kn.simulate(circuit.double(), x, solver=kn.Solver(rtol=1e-9, atol=1e-9))
    np.testing.assert_allclose(spice.final, ours.detach().numpy(), rtol=0, atol=AGREEMENT_V)
    assert spice.runs == 3 * 2  # two netlists (2 + 1 samples) per slice


def test_one_netlist_per_sample_and_replicas_agree():
    circuit = small_circuit("ShiftTanh2", num_nodes=4, slices=2)  # bounded currents: volts, not kilovolts
    x = torch.randn(3, 3)
    separate = spice_trajectory(circuit, x, SpiceOptions(), samples_per_netlist=1, jobs=2)
    together = spice_trajectory(circuit, x, SpiceOptions(), jobs=2)
    assert (separate.runs, together.runs) == (6, 2)
    # Replicas share one time grid, so step control differs slightly: within the target, not bitwise.
    np.testing.assert_allclose(separate.final, together.final, rtol=0, atol=AGREEMENT_V)


def test_report_json_and_plot(tmp_path):
    network = kn.Network(small_circuit("ShiftTanh1", num_nodes=3, slices=2), readout="last1")
    report = verify(network, torch.randn(2, 2), options=SpiceOptions(points=21))
    data = report.to_dict()
    json.dumps(data, allow_nan=False)  # plain floats, ints, strings
    for key in ("max_abs_error_v", "mean_abs_error_v", "nodes", "edges", "ngspice_s", "kirchhoffnet_s"):
        assert key in data
    assert data["mean_abs_error_v"] <= data["max_abs_error_v"] <= AGREEMENT_V
    assert report.times[1][0] == pytest.approx(1.0) and len(report.times[1]) == 21
    target = save_figure(report.figure(sample=1), tmp_path / "overlay.png")
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="sample 2 is out of range: the report holds 2 samples"):
        report.figure(sample=2)


def test_bad_inputs_are_refused():
    flow = kn.Flow(small_circuit(num_nodes=3))
    assert random_inputs(flow, 3, seed=1).shape == (3, 2)
    torch.testing.assert_close(random_inputs(flow, 3, seed=1), random_inputs(flow, 3, seed=1))  # reproducible
    with pytest.raises(ConfigError, match="samples must be a positive count, got 0"):
        verify(flow, 0)
    with pytest.raises(ConfigError, match="inputs have 5 features but the first slice has only 2 state nodes"):
        verify(flow, torch.zeros(1, 5))
    with pytest.raises(ConfigError, match="inputs must be a non-empty"):
        spice_trajectory(flow, torch.zeros(0, 2))
    with pytest.raises(ConfigError, match="samples_per_netlist must be at least 1, got 0"):
        spice_trajectory(flow, torch.zeros(1, 2), samples_per_netlist=0)

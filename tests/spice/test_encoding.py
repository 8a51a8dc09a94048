"""An encoded circuit in SPICE: decks hold node voltages v = offset + scale·x and say so; ngspice's voltages,
decoded, are kirchhoffnet's data-space outputs."""

from __future__ import annotations

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.circuit import Encoding
from kirchhoffnet.spice import SpiceOptions, import_deck, verify
from kirchhoffnet.spice.export import export_decks, export_netlists, export_network_deck
from kirchhoffnet.spice.verify import REFERENCE_SOLVER
from kirchhoffnet.training import train
from kirchhoffnet.training.spice_metric import spice_metric
from tests.training.helpers import tiny_flow

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ENCODING = Encoding(offset=0.5, scale=0.12)
FAST = SpiceOptions(reltol=1e-6, max_step_fraction=2e-2, points=21)  # seconds; ~1e-5 V for behavioural decks


def _circuit() -> kn.Circuit:
    """Two slices over 2 state nodes with gains of order 1 (a 2-D flow's shape), encoded."""
    circuit = kn.Circuit(
        kn.topology.fully_connect(3, (2, 2)), "ShiftTanh2", slices=2, times=(0.0, 0.5, 1.0), encoding=ENCODING
    )
    with torch.no_grad():
        for piece in circuit.slices:
            piece.params.normal_(0.0, 0.7)
    return circuit.double()


def test_decks_hold_encoded_voltages_and_state_the_encoding(tmp_path):
    circuit, x = _circuit(), torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    first = export_netlists(circuit, x, tmp_path / "net.cir")[0].read_text()
    assert "; node voltages v = 0.5 + 0.12·x of data x" in first.splitlines()[0]
    ics = export_network_deck(circuit, x, tmp_path / "whole.cir")[2].read_text()
    assert ics.splitlines()[1:] == [".ic v(n1)=0.62", ".ic v(n2)=0.26"]  # 0.5 + 0.12·1, 0.5 − 0.12·2
    imported = import_deck(export_decks(circuit, x, tmp_path / "p.cir", "ngspice")[::3])
    assert imported.encoding == ENCODING


@pytest.mark.needs_ngspice
def test_an_encoded_circuit_agrees_in_ngspice():
    circuit, x = _circuit(), torch.randn(2, 2, dtype=torch.float64)
    report = verify(circuit, x, options=FAST, jobs=2)
    swing = max(report.slice_swing_v)
    assert swing > 0.1 and report.max_abs_error_v <= 1e-3 * swing  # observed 7.9e-5 V of a 1.1 V swing
    # ngspice ran the encoded voltages: it starts from 0.5 + 0.12·x, not from x.
    torch.testing.assert_close(torch.from_numpy(report.spice[0][0]), ENCODING.encode(x), rtol=0, atol=1e-9)
    with torch.no_grad():
        ours, _ = kn.simulate(circuit, x, solver=REFERENCE_SOLVER)
    decoded = ENCODING.decode(torch.from_numpy(report.spice_final))
    torch.testing.assert_close(decoded, ours, rtol=0, atol=report.max_abs_error_v / ENCODING.scale + 1e-12)


@pytest.mark.needs_ngspice
def test_spice_metric_decodes_ngspices_samples(tmp_path):
    config = tiny_flow("circuit.encoding={offset: 0.5, scale: 0.12}", "train.epochs=1")
    run = train(config, tmp_path / "run", progress=False)
    result, report = spice_metric(run.run_dir, 4, options=FAST, rails=(0.0, 1.0), jobs=2)
    ours, theirs = torch.tensor(result["samples_kirchhoffnet"]), torch.tensor(result["samples_ngspice"])
    # Samples in data space on both sides (standard-normal base points spread by ~1, not squeezed by 0.12) ...
    assert float(ours.std()) > 0.5
    # ... and ngspice's, decoded, within its voltage error over the scale of kirchhoffnet's.
    assert result["max_sample_distance"] <= 2 * report.max_abs_error_v / ENCODING.scale + 1e-9
    torch.testing.assert_close(theirs, ours, rtol=0, atol=2 * report.max_abs_error_v / ENCODING.scale)

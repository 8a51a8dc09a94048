"""The energy a transistor-level circuit draws from its supplies, read off ngspice's branch currents."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kirchhoffnet.spice import MosTechnology, SpiceOptions, TransistorRelu, verify
from tests.conftest import small_circuit

pytestmark = [pytest.mark.needs_ngspice, pytest.mark.usefixtures("one_torch_thread")]


def test_supply_energy_is_the_drain_bias_times_the_edge_currents():
    """At level 1 each transistor's drain current is its edge's current, drawn at V_DS: the energy must be
    V_DS · I_unit · ∫ Σ_e i_e dt along kirchhoffnet's own trajectory."""
    circuit = small_circuit("MosRelu", num_nodes=4, slices=2).to(torch.float64)
    technology = MosTechnology(current_scale_a=2e-4)
    report = verify(circuit, 2, options=SpiceOptions(points=201), jobs=2, realisation=TransistorRelu(technology))
    expected = 0.0
    for k, (t, v) in enumerate(zip(report.times, report.ours, strict=True)):
        piece = circuit.slice(k)
        with torch.no_grad():
            total = piece.currents(torch.from_numpy(v.reshape(-1, v.shape[2]))).sum(dim=1).reshape(v.shape[:2])
        drain = piece.device_family.drain_voltage_v
        expected += drain * technology.current_scale_a * float(np.trapezoid(total.numpy(), t, axis=0).mean())
    assert report.supply_energy_j is not None and expected > 0
    assert report.supply_energy_j == pytest.approx(expected, rel=1e-3)
    assert report.supply_peak_power_w is not None and report.supply_peak_power_w > 0
    assert report.to_dict()["supply_energy_j"] == report.supply_energy_j


def test_behavioural_sources_draw_from_no_supply():
    report = verify(small_circuit("MosRelu", num_nodes=3, slices=1), 1, options=SpiceOptions(points=11))
    assert report.supply_energy_j is None and report.supply_peak_power_w is None

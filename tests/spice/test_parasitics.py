"""Device parasitics: the edge transistors' terminal capacitances measured in ngspice against the level-1 (Meyer)
formulas, their sum on the nodes in normalised units, and ``spice verify --transistors --parasitics``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app
from kirchhoffnet.errors import ConfigError, DeviceError
from kirchhoffnet.spice import device_parasitics, parasitic_shift, tabulate, with_parasitics
from kirchhoffnet.spice.model_cards import load_card
from kirchhoffnet.spice.tabulation import physical_width

from ..conftest import table_circuit

pytestmark = [pytest.mark.needs_ngspice, pytest.mark.usefixtures("one_torch_thread")]

EPS_OX = 3.9 * 8.854187817e-12  # F/m
CARD = ".model kn_nmos nmos (level=1 vto=0.5 kp=2e-4 tox=4e-9 cgso=3e-10 cgdo=3e-10)\n"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KIRCHHOFFNET_CACHE", str(tmp_path / "cache"))


def _chain(device: kn.devices.TransistorTable, widths: list[float], biases: list[float]) -> kn.Circuit:
    """Node 1 → 2 → 3 → ground... as edges (1, 2), (2, 3), (3, 0): three edges, one of them to ground."""
    edges = torch.tensor([[1, 2, 3], [2, 3, 0]])
    params = torch.tensor([widths, biases], dtype=torch.float64)
    return kn.Circuit([kn.Slice(edges, device, params=params, capacitance=2.0)], times=(0.0, 1.0))


def test_level1_terminal_capacitances_are_meyers_and_sum_onto_the_nodes(tmp_path):
    """In triode at V_DS = 0.1 V the Meyer capacitances give C_gg = Cox·W·L + (CGSO + CGDO)·W (C_gs + C_gd = Cox·W·L
    to 0.05 %) and C_dd = C_gd + CGDO·W; each edge puts C_gg + C_dd on each state node it touches."""
    path = tmp_path / "l1.lib"
    path.write_text(CARD)
    device = tabulate(load_card(path), supply_v=1.8, knots=17, check_widths=0).device
    circuit = _chain(device, [1.0, 2.0, 0.5], [1.8, 1.2, 1.8])
    measured = device_parasitics(circuit, 1e-9)
    width = physical_width(device, np.array([1.0, 2.0, 0.5]))
    oxide = EPS_OX / 4e-9 * width * 1e-6  # Cox·W·L, L = 1 µm (the card states none)
    overdrive = np.array([1.3, 0.7, 1.3])  # V_GS − V_T
    c_gd = 2 / 3 * oxide * (1 - (overdrive / (2 * overdrive - 0.1)) ** 2)
    np.testing.assert_allclose(measured.gate_f[0], oxide + 6e-10 * width, rtol=2e-3)
    np.testing.assert_allclose(measured.drain_f[0], c_gd + 3e-10 * width, rtol=2e-3)
    per_edge = measured.gate_f[0] + measured.drain_f[0]
    np.testing.assert_allclose(measured.added_f[0], [per_edge[0], per_edge[0] + per_edge[1], per_edge[1] + per_edge[2]])
    unit = device.source["current_unit_a"]
    loaded = with_parasitics(circuit, measured)
    added = (loaded.slices[0].capacitance - circuit.slices[0].capacitance).numpy()
    np.testing.assert_allclose(added, measured.added_f[0] / (unit * 1e-9), rtol=1e-12)
    assert bool((circuit.slices[0].capacitance == 2.0).all())  # the original is untouched
    # Ten times faster, ten times the weight of the same farads.
    fast = device_parasitics(circuit, 1e-10).to_dict(circuit)
    slow = measured.to_dict(circuit)
    assert fast["slowdown_max"][0] - 1 == pytest.approx(10 * (slow["slowdown_max"][0] - 1), rel=1e-9)
    x = torch.tensor([[0.8, -0.3, 0.5]], dtype=torch.float64)
    shift = parasitic_shift(circuit, device_parasitics(circuit, 1e-11), x)
    assert shift["slowdown_mean"][0] > 2 and shift["output_shift_v_max"] > 1e-3  # slower nodes end elsewhere


def test_parasitics_are_refused_without_a_table_or_a_time_unit():
    circuit = kn.Circuit(kn.topology.chain(3), "ShiftTanh2", slices=1)
    with pytest.raises(DeviceError, match="device parasitics come from the transistors of a TransistorTable"):
        device_parasitics(circuit, 1e-9)
    table = kn.Circuit(kn.topology.chain(3), tabulate("level1_180nm", knots=9, check_widths=0).device, slices=1)
    for bad in (0.0, -1e-9, float("nan")):
        with pytest.raises(ConfigError, match="time unit must be a positive number of seconds"):
            device_parasitics(table, bad)


def test_verify_with_parasitics_loads_both_simulators_and_reports_the_slowdown(tmp_path):
    """A PMOS level-1 table network, its nodes loaded at a 10 ps time unit: ngspice still follows kirchhoffnet."""
    device = tabulate("level1_180nm", transistor="pmos", knots=17, check_widths=0).device
    torch.manual_seed(0)
    circuit = table_circuit(
        device, kn.topology.fully_connect(3, (2, 2)), (0.0, 0.25, 0.5), signed=False, bias_v=(0.4, 1.2)
    )
    path = kn.save(circuit, tmp_path / "table.safetensors")
    runner = CliRunner()
    args = ["spice", "verify", str(path), "--samples", "1", "--transistors", "--reltol", "1e-6", "--max-step", "1e-2"]
    result = runner.invoke(app, [*args, "--parasitics", "--time-unit", "1e-11", "--max-error", "0.02"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["max_abs_error_v"] < 0.02  # observed 0.11 mV (slowdown ~40, outputs moved 1.28 V)
    figures = report["parasitics"]
    assert figures["time_unit_s"] == 1e-11 and min(figures["slowdown_mean"]) > 1.01
    assert figures["output_shift_v_max"] > 10 * report["max_abs_error_v"]  # what the parasitics do, seen above noise
    # --metric runs the loaded circuit both ways too (a flow: scored by its samples).
    flow = kn.save(kn.Flow(circuit), tmp_path / "flow.safetensors")
    metric = [*args[:2], str(flow), *args[3:], "--points", "21", "--metric", "--samples", "2"]
    result = runner.invoke(app, [*metric, "--parasitics", "--time-unit", "1e-11", "--max-error", "0.02"])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert scored["metric"] == "samples" and scored["max_sample_distance"] < 0.02  # observed 9.7e-5
    assert scored["parasitics"]["slowdown_mean"] == figures["slowdown_mean"]  # the same capacitances
    for extra, message in [
        (["--parasitics"], "--parasitics needs --transistors and --time-unit"),
        (["--time-unit", "1e-9"], "--time-unit needs --parasitics"),
        (["--parasitics", "--time-unit", "-1"], "time unit must be a positive number of seconds"),
    ]:
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 2 and message in result.output, result.output


def test_a_slice_used_twice_is_loaded_once():
    device = tabulate("level1_180nm", knots=9, check_widths=0).device
    shared = kn.Slice(kn.topology.chain(3), device)
    circuit = kn.Circuit([shared, shared], times=(0.0, 0.5, 1.0))
    measured = device_parasitics(circuit, 1e-9)
    loaded = with_parasitics(circuit, measured)
    for k in range(2):
        torch.testing.assert_close(loaded.slice(k).capacitance.double(), 1.0 + measured.normalised(k))
    assert float(measured.normalised(0).min()) > 1e-3  # a load the test can see

"""Tabulating transistors in ngspice: the fit against physics and fresh sweeps, the cache, the shipped cards,
and networks of the tabulated family built from those transistors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.devices import TransistorTable
from kirchhoffnet.errors import ConfigError, DeviceError, ToolError
from kirchhoffnet.spice import SpiceOptions, model_cards, tabulation, verify
from kirchhoffnet.spice.model_cards import ModelCard, load_card, shipped_cards
from kirchhoffnet.spice.mos import TableTransistors, level1_card
from kirchhoffnet.spice.netlist import edge_parameters
from kirchhoffnet.spice.tabulation import cache_dir, physical_width, tabulate

from ..conftest import table_circuit

pytestmark = [pytest.mark.needs_ngspice, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("KIRCHHOFFNET_CACHE", str(folder))
    return folder


def test_a_level1_table_is_the_square_law_of_the_card():
    """Above V_T + V_DS the level-1 current is triode, linear in V_GS with slope KP·(1 + λV_DS)·(W/L)·V_DS."""
    card = ModelCard("l1", level1_card(threshold_v=0.6, kp_a_per_v2=2e-4, lambda_per_v=0.05), "kn_nmos", 1e-6, 1.8)
    result = tabulate(card, drain_voltage_v=0.1, cache=False)
    device, report = result.device, result.report
    unit = report["current_unit_a"]
    assert unit == pytest.approx(2e-4 * 1.005 * 10 * 0.1 * (1.8 - 0.6 - 0.05), rel=1e-6)  # I_D at the supply
    gate = torch.tensor([0.3, 0.9, 1.3, 1.7], dtype=torch.float64)
    slope = device.slope(device.activation(gate, inplace=False))
    expected = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64) * 2e-4 * 1.005 * 10 * 0.1 / unit
    torch.testing.assert_close(slope, expected, rtol=5e-3, atol=1e-9)  # the knots (56 mV apart) miss its kinks
    assert report["fit_error_pct"] < 0.1 and report["width_error_pct"] < 0.1  # observed 0.02 % and 0.02 %
    assert abs(report["width_offset_m"]) < 1e-12  # level 1 has no width offset
    assert device.source["card_sha256"] == report["card_sha256"] and len(device.slopes) == 65


def test_bsim4_tables_fit_fresh_sweeps_within_one_percent():
    result = tabulate("bsim4_45nm", knots=17, check_widths=1, cache=False)
    report = result.report
    # Observed 0.02 % (17 knots) and ~0.02 % at the other widths once the width offset is fitted.
    assert report["fit_error_pct"] < 1.0 and report["width_error_pct"] < 1.0
    assert 0 < report["width_offset_m"] < 0.25 * report["reference_width_m"]  # 2·WINT-like: a few nm
    assert physical_width(result.device, 1.0) == pytest.approx(report["reference_width_m"])
    assert result.device.supply_v == 1.0 and result.device.width_min == 0.25


def test_the_cache_is_used_and_a_bad_cache_file_is_recomputed(private_cache, monkeypatch):
    first = tabulate("level1_180nm", knots=9, check_widths=1)
    (path,) = (private_cache / "tabulations").iterdir()
    assert json.loads(path.read_text())["key"] == path.stem

    def no_ngspice(*args, **kwargs):
        raise ToolError("ngspice must not run: the tabulation is cached")

    monkeypatch.setattr(tabulation, "run_ngspice", no_ngspice)
    again = tabulate("level1_180nm", knots=9, check_widths=1)
    assert again.device == first.device and again.report == first.report
    monkeypatch.undo()
    monkeypatch.setenv("KIRCHHOFFNET_CACHE", str(private_cache))
    hostile = [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"format": 1, "key": "another", "device": first.device.spec(), "report": {}}),
        json.dumps({"format": 1, "key": path.stem, "device": {"name": "ShiftTanh2"}, "report": {}}),
        json.dumps({"format": 1, "key": path.stem, "device": {**first.device.spec(), "slopes": [1, -1]}, "report": {}}),
        json.dumps({"format": 1, "key": path.stem, "device": "MosRelu", "report": {}}),
        " " * (2 << 20),
    ]
    for text in hostile:
        path.write_text(text)
        redone = tabulate("level1_180nm", knots=9, check_widths=1)
        assert redone.device == first.device
        assert json.loads(path.read_text())["device"] == first.device.spec()  # rewritten valid


def test_an_unwritable_cache_warns_and_still_tabulates(private_cache):
    private_cache.write_text("a file where the cache folder should be")  # unwritable even for root
    with pytest.warns(UserWarning, match="tabulation not cached"):
        result = tabulate("level1_180nm", knots=9, check_widths=1)
    assert isinstance(result.device, TransistorTable)


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("KIRCHHOFFNET_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "kirchhoffnet"
    monkeypatch.setenv("KIRCHHOFFNET_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_every_shipped_card_loads_and_conducts():
    assert shipped_cards() == ["bsim4_180nm", "bsim4_45nm", "level1_180nm"]
    for name in shipped_cards():
        card = load_card(name)
        assert card.model_name == "kn_nmos" and card.length_m and card.supply_v
        assert "not a foundry process" in card.text
    readme = Path(model_cards.__file__).parent / "cards" / "README.md"
    assert "generic illustrative values, not a foundry process" in readme.read_text()


def test_card_files_and_bad_cards(tmp_path):
    path = tmp_path / "mine.lib"
    path.write_text("* mine\n.model other pmos (level=1)\n.model nch NMOS (level=1 vto=0.5 kp=1e-4)\n")
    card = load_card(path)
    assert card.model_name == "nch" and card.length_m is None
    with pytest.raises(ConfigError, match="unknown model card 'bsim9'; choose one of: bsim4_180nm"):
        load_card("bsim9")
    with pytest.raises(ConfigError, match="defines no NMOS model 'other'"):
        load_card(path, "other")
    with pytest.raises(ConfigError, match="must lie below the supply"):
        tabulate(card, drain_voltage_v=2.0, cache=False)
    with pytest.raises(ConfigError, match="width_range must hold the reference width"):
        tabulate(card, width_range=(2.0, 4.0), cache=False)
    for bad, message in [
        ({"drain_voltage_v": "x"}, "drain_voltage_v must be a positive number, got 'x'"),
        ({"length_m": -1e-6}, "length_m must be a positive number"),
        ({"width_range": "ab"}, "width_range must be two numbers"),
        ({"knots": 2.5}, "knots, check_widths integers"),
        ({"check_widths": -1}, r"check_widths in \[0, 100\]"),
    ]:
        with pytest.raises(ConfigError, match=message):
            tabulate(card, cache=False, **bad)
    dead = ModelCard("dead", ".model kn_nmos nmos (level=1 vto=5 kp=1e-4)", "kn_nmos", 1e-6, 1.8)
    with pytest.raises(DeviceError, match="conducts no current"):
        tabulate(dead, cache=False)


def test_width_offset_is_applied_to_drawn_widths():
    device = TransistorTable(source={"width_offset_m": 1e-8, "reference_width_m": 1e-6})
    np.testing.assert_allclose(physical_width(device, np.array([0.5, 1.0, 2.0])), [0.505e-6, 1e-6, 1.99e-6])


def test_a_bsim4_table_network_built_from_transistors_matches_the_simulator():
    """The whole point: trained on the table, the BSIM4 transistor circuit follows kirchhoffnet's simulation."""
    result = tabulate("bsim4_45nm", knots=33, check_widths=1)
    supply = result.device.supply_v  # gate biases at 30–80 % of the supply, both polarities
    edges = kn.topology.random_graph(6, 16, seed=0)
    circuit = table_circuit(result.device, edges, (0.0, 0.25, 0.5), signed=True, bias_v=(0.3 * supply, 0.8 * supply))
    realisation = TableTransistors(load_card("bsim4_45nm"), result.device)
    x = torch.randn(1, 5) * 0.3
    report = verify(circuit, x, options=SpiceOptions(reltol=1e-6, max_step_fraction=1e-2), realisation=realisation)
    assert report.peak_abs_voltage_v > 1.0  # the gates swing well past threshold
    assert report.max_abs_error_v <= 0.01 * report.peak_abs_voltage_v  # observed 9.1 mV of 1.84 V (0.49 %)
    # The level-1 law in the table's place moves the nodes far more than that: the test can tell them apart.
    level1 = kn.Circuit(
        [kn.Slice(p.edge_index, TransistorTable(supply_v=1.0), params=p.params.detach()) for p in circuit.slices],
        times=(0.0, 0.25, 0.5),
    )
    with torch.no_grad():
        gap = (kn.simulate(level1, x)[0] - kn.simulate(circuit, x)[0]).abs().max()
    assert float(gap) > 5 * report.max_abs_error_v  # observed 0.30 V


def test_gates_driven_past_the_table_are_clamped_alike_in_the_law_and_the_transistors():
    """Nodes swinging ±6 V drive gates to ±7 V, far past the table's 2 V: the law and the deck both clamp the gate.

    With the straight line the law had past the last knot, ngspice and kirchhoffnet parted by 0.63 V here."""
    device = tabulate("bsim4_45nm", knots=33, check_widths=1).device
    circuit = kn.Circuit(kn.topology.random_graph(4, 8, seed=0), device, slices=1, times=(0.0, 0.5)).to(torch.float64)
    with torch.no_grad():
        params = circuit.slices[0].params
        params[0] = torch.linspace(-1.5, 1.5, params.shape[1]).sign() * 1.5
        params[1] = 0.8
    x = torch.tensor([[4.0, -3.0, 2.0]], dtype=torch.float64)
    with torch.no_grad():
        (_, nodes), *_ = kn.trajectory(circuit, x, points_per_slice=51)[0]
        polarity, _, bias, _ = device.coefficients(edge_parameters(circuit.slices[0]))
    nodes = torch.cat([torch.zeros_like(nodes[..., :1]), nodes], -1)  # node 0 is ground
    src, dst = circuit.slices[0].edge_index
    gate = bias + polarity * (nodes[..., src] - nodes[..., dst])
    assert float(gate.max()) > device.gate_max_v + 3 and float(gate.min()) < -3  # observed 6.8 V and -7.2 V
    realisation = TableTransistors(load_card("bsim4_45nm"), device)
    report = verify(circuit, x, options=SpiceOptions(reltol=1e-6, max_step_fraction=1e-2), realisation=realisation)
    assert report.max_abs_error_v < 1e-3 * report.peak_abs_voltage_v  # observed 2.3 µV of 6.0 V


def test_the_realisation_refuses_another_card_and_another_family():
    result = tabulate("level1_180nm", knots=9, check_widths=1)
    with pytest.raises(DeviceError, match=r"tabulated from card 'level1_180nm'.*not from 'bsim4_45nm'"):
        TableTransistors(load_card("bsim4_45nm"), result.device)
    realisation = TableTransistors(load_card("level1_180nm"), result.device)
    with pytest.raises(DeviceError, match="this slice uses MosRelu"):
        realisation.elements(kn.Slice(kn.topology.chain(3), "MosRelu"))
    piece = kn.Slice(kn.topology.chain(3), result.device, params=torch.tensor([[-2.0, 50.0], [0.5, -1.0]]))
    lines = [realisation.elements(piece)(e, "") for e in range(2)]
    assert realisation.supplies(piece, "_1") == [("i(v.x0_1.vd)", 0.1), ("i(v.x1_1.vd)", 0.1)]  # drain biases
    width = physical_width(result.device, np.array([2.0, 4.0]))  # |θ1|, clamped to width_max = 4
    assert lines[0].endswith(f"kn_mosrelu w={float(width[0])!r} l=1.8e-07 vb=0.5 pol=-1.0")
    assert lines[1].endswith(f"kn_mosrelu w={float(width[1])!r} l=1.8e-07 vb=0.0 pol=1.0")  # bias clamped to ≥ 0

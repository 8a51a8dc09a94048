"""PMOS transistor tables: the shipped PMOS cards, their fit against fresh ngspice sweeps, the surrogate's
derivatives, and a PMOS network built from its transistors (source and bulk at the supply) in ngspice."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import pytest
import torch
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app
from kirchhoffnet.config.circuit import build_device
from kirchhoffnet.devices import TransistorTable
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.spice import SpiceOptions, verify
from kirchhoffnet.spice.model_cards import load_card, shipped_cards
from kirchhoffnet.spice.mos import table_transistors
from kirchhoffnet.spice.tabulation import tabulate

from ..conftest import check_table_derivatives, table_circuit

pytestmark = [pytest.mark.needs_ngspice, pytest.mark.usefixtures("one_torch_thread")]

# The NMOS cards' SHA-256: tables and checkpoints name their card by it, so adding PMOS cards must not change them.
NMOS_SHA256 = {
    "bsim4_180nm": "b53404d1e547c233711a9360946d4da14ac1da7a64ace4843d0e46b5cf86a6b8",
    "bsim4_45nm": "782f3faa418d8dc72973debd9cf79a266495a08e7061d8ea94b5a9f2d10a31e4",
    "level1_180nm": "35742a21119eeaf8b42a4d509e7d05146d3e80d04c758627aa563d773d0508ea",
}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KIRCHHOFFNET_CACHE", str(tmp_path / "cache"))


def test_the_nmos_cards_are_unchanged_and_each_technology_has_its_pmos():
    folder = resources.files("kirchhoffnet.spice") / "cards"
    for name in shipped_cards():
        assert hashlib.sha256((folder / f"{name}.lib").read_bytes()).hexdigest() == NMOS_SHA256[name]
        nmos, pmos = load_card(name), load_card(name, transistor="pmos")
        assert (nmos.model_name, nmos.transistor, pmos.model_name, pmos.transistor) == (
            "kn_nmos",
            "nmos",
            "kn_pmos",
            "pmos",
        )
        assert (pmos.length_m, pmos.supply_v) == (nmos.length_m, nmos.supply_v)
        assert "not a foundry process" in pmos.text and pmos.text != nmos.text


def test_a_card_file_gives_the_model_of_the_type_asked_for(tmp_path):
    path = tmp_path / "both.lib"
    path.write_text(".model nch nmos (level=1 vto=0.5 kp=1e-4)\n.model pch PMOS (level=1 vto=-0.5 kp=4e-5)\n")
    assert load_card(path).model_name == "nch" and load_card(path, transistor="pmos").model_name == "pch"
    with pytest.raises(ConfigError, match="defines no PMOS model 'nch'"):
        load_card(path, "nch", transistor="pmos")
    with pytest.raises(ConfigError, match="unknown transistor 'cmos'; choose one of: nmos, pmos"):
        load_card("level1_180nm", transistor="cmos")  # type: ignore[arg-type]


def test_a_level1_pmos_table_is_the_square_law_of_the_card():
    """Above |V_T| + V_SD the level-1 PMOS current is triode, linear in V_SG: slope KP·(1 + λV_SD)·(W/L)·V_SD."""
    result = tabulate("level1_180nm", transistor="pmos", cache=False)
    device, report = result.device, result.report
    beta = 1e-4 * (1 + 0.08 * 0.1) * 10 * 0.1  # the card's kp, lambda; W/L = 10, V_SD = 0.1 V
    assert report["current_unit_a"] == pytest.approx(beta * (1.8 - 0.45 - 0.05), rel=1e-6)  # I_D at V_SG = supply
    assert device.source["transistor"] == "pmos" and device.source["model_name"] == "kn_pmos"
    slope = device.slope(device.activation(torch.tensor([0.3, 1.0, 1.7], dtype=torch.float64), inplace=False))
    expected = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64) * beta / report["current_unit_a"]
    torch.testing.assert_close(slope, expected, rtol=5e-3, atol=1e-9)


def test_a_table_saved_before_pmos_cards_reads_as_the_nmos_it_was(tmp_path):
    """Checkpoints written before tables recorded their polarity hold no ``transistor``: they load as NMOS, so
    their config.yaml (which now says ``transistor: nmos``) still matches them."""
    device = tabulate("level1_180nm", cache=False).device
    old = dict(device.hyperparameters())
    old["source"] = {k: v for k, v in device.source.items() if k != "transistor"}
    assert TransistorTable(**old).spec() == device.spec()


@pytest.mark.parametrize("card", ["level1_180nm", "bsim4_180nm", "bsim4_45nm"])
def test_pmos_tables_fit_fresh_sweeps(card):
    """Fit error against a fresh ngspice sweep (other V_SG points, other widths), % of the current range."""
    report = tabulate(card, transistor="pmos", knots=33, check_widths=2, cache=False).report
    # Observed with 33 knots: level1 0.09 %, bsim4_180nm 0.19 %, bsim4_45nm 0.008 % (65 knots: 0.023 / 0.056 / 0.002).
    assert report["fit_error_pct"] < 0.5 and report["width_error_pct"] < 0.5
    nmos = tabulate(card, knots=33, check_widths=0).report
    assert report["current_unit_a"] < 0.6 * nmos["current_unit_a"]  # holes: a PMOS carries less at the same size


def test_the_pmos_surrogates_derivatives_match_finite_differences():
    device = tabulate("bsim4_45nm", transistor="pmos", knots=33, check_widths=0).device
    u = torch.linspace(-0.3, 2.4, 1001, dtype=torch.float64)  # cut-off, the table and past it
    _, out, slope = check_table_derivatives(device, u, slope_tol=(1e-6, 1e-8), curvature_tol=(1e-5, 1e-5))
    assert float(slope.max()) > 0.5 and bool((device.curvature(out, slope) < 0).any())  # g_m rises and falls


def test_a_pmos_network_built_from_its_transistors_matches_the_simulator():
    """Source and bulk at the supply, the drain V_SD below it: ngspice's PMOS circuit follows kirchhoffnet."""
    device = tabulate("bsim4_45nm", transistor="pmos", knots=33, check_widths=0).device
    torch.manual_seed(0)
    edges = kn.topology.random_graph(5, 12, seed=1)  # gate drives at 30–80 % of the supply, both polarities
    circuit = table_circuit(
        device, edges, (0.0, 0.5, 1.0), signed=True, bias_v=(0.3 * device.supply_v, 0.8 * device.supply_v)
    )
    realisation = table_transistors(circuit)
    assert realisation is not None
    deck = "\n".join(realisation.preamble(circuit.slices[0]))
    assert ".model kn_pmos pmos" in deck and "M1 dd g sup sup kn_pmos" in deck and "Vsup sup 0 1.0" in deck
    x = torch.randn(1, 4)
    report = verify(circuit, x, options=SpiceOptions(reltol=1e-6, max_step_fraction=1e-2), realisation=realisation)
    assert report.peak_abs_voltage_v > 0.5  # the gates swing past threshold
    assert report.max_abs_error_v <= 1e-3 * report.peak_abs_voltage_v  # observed 7.3 µV of 2.2 V
    # The NMOS table of the same technology in its place moves the nodes far more: the test tells them apart.
    nmos = tabulate("bsim4_45nm", knots=33, check_widths=0).device
    swapped = kn.Circuit(
        [kn.Slice(p.edge_index, nmos, params=p.params.detach()) for p in circuit.slices], times=(0.0, 0.5, 1.0)
    )
    with torch.no_grad():
        gap = (kn.simulate(swapped, x)[0] - kn.simulate(circuit, x)[0]).abs().max()
    assert float(gap) > 100 * report.max_abs_error_v  # observed 0.14 V


def test_a_config_and_the_cli_tabulate_a_pmos(tmp_path):
    device = build_device({"name": "TransistorTable", "card": "level1_180nm", "transistor": "pmos", "knots": 17})
    assert isinstance(device, TransistorTable) and device.source["transistor"] == "pmos"
    with pytest.raises(ConfigError, match="unknown transistor 'npn'"):
        build_device({"name": "TransistorTable", "card": "level1_180nm", "transistor": "npn"})
    runner = CliRunner()
    args = ["spice", "tabulate", "--model-card", "level1_180nm", "--transistor", "pmos", "--knots", "17"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["transistor"] == "pmos" and report["model_name"] == "kn_pmos" and report["fit_error_pct"] < 1.0
    result = runner.invoke(app, [*args[:-2], "--transistor", "cmos"])
    assert result.exit_code == 2 and "unknown transistor 'cmos'" in result.output

"""``kirchhoffnet spice tabulate`` and ``spice verify --transistors`` of a TransistorTable checkpoint."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app
from kirchhoffnet.spice import tabulate

from ..conftest import table_circuit

runner = CliRunner()
pytestmark = [pytest.mark.needs_ngspice, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KIRCHHOFFNET_CACHE", str(tmp_path / "cache"))


def test_tabulate_prints_the_fit_report_as_pure_json(tmp_path):
    out = tmp_path / "fit.json"
    args = ["spice", "tabulate", "--model-card", "level1_180nm", "--knots", "17", "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout is the report alone; "wrote ..." goes to stderr
    assert report["card"] == "level1_180nm" and report["knots"] == 17 and report["fit_error_pct"] < 1.0
    assert json.loads(out.read_text())["device"]["name"] == "TransistorTable"


def test_tabulate_errors_are_one_line(tmp_path):
    result = runner.invoke(app, ["spice", "tabulate", "--model-card", "bsim9"])
    assert result.exit_code == 2 and "unknown model card 'bsim9'; choose one of: bsim4_180nm" in result.output
    result = runner.invoke(app, ["spice", "tabulate", "--model-card", "level1_180nm", "--drain-voltage", "5"])
    assert result.exit_code == 2 and "must lie below the supply" in result.output


def test_verify_with_transistors_builds_the_table_from_its_own_card(tmp_path):
    device = tabulate("level1_180nm", knots=17, check_widths=1).device
    circuit = table_circuit(
        device, kn.topology.fully_connect(3, (2, 2)), (0.0, 0.25, 0.5), signed=False, bias_v=(0.4, 1.2)
    )
    path = kn.save(circuit, tmp_path / "table.safetensors")
    args = ["spice", "verify", str(path), "--samples", "1", "--transistors", "--reltol", "1e-6", "--max-step", "1e-2"]
    result = runner.invoke(app, [*args, "--max-error", "0.02"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["max_abs_error_v"] < 0.02
    result = runner.invoke(app, [*args, "--model-card", "bsim4_45nm"])
    assert result.exit_code == 2 and "tabulated from card 'level1_180nm'" in result.output

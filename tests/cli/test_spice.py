"""``kirchhoffnet spice export|verify`` on our checkpoints, run directories and original results."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app
from tests.conftest import small_circuit

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_export_one_file_per_slice(tmp_path, flow_checkpoint):
    result = runner.invoke(app, ["spice", "export", str(flow_checkpoint.parent), "--out", str(tmp_path / "net.cir")])
    assert result.exit_code == 0, result.output
    decks = [(tmp_path / f"net.slice{k}.cir").read_text() for k in range(2)]
    assert "initial voltages from the inputs" in decks[0]
    assert "initial voltages from kirchhoffnet's state at the end of slice 0" in decks[1]
    edges = small_circuit(num_nodes=3).slice(0).num_edges
    for deck in decks:
        lines = deck.splitlines()
        assert sum(line.startswith("B") for line in lines) == edges
        assert sum(line.startswith("C") for line in lines) == 2
    assert "ngspice -b -r out.raw" in result.output


def test_export_single_slice_writes_the_named_file(tmp_path):
    path = tmp_path / "c.safetensors"
    kn.save(small_circuit("ShiftRelu2", num_nodes=4, slices=1), path)
    result = runner.invoke(app, ["spice", "export", str(path), "--out", str(tmp_path / "one.cir"), "--samples", "3"])
    assert result.exit_code == 0, result.output
    deck = (tmp_path / "one.cir").read_text()
    assert "3 sample(s)" in deck and "C3_2 n3_2 0" in deck


def test_export_whole_network_writes_one_deck(tmp_path):
    path = tmp_path / "c.safetensors"
    kn.save(small_circuit("ShiftRelu2", num_nodes=4, slices=3), path)
    args = ["spice", "export", str(path), "--out", str(tmp_path / "net.cir"), "--whole-network", "--samples", "2"]
    result = runner.invoke(app, [*args, "--dialect", "ltspice"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("net.*")) == ["net.cir", "net.ic.inc", "net.params.inc"]
    assert "Vgate2 g2 0 PWL(" in (tmp_path / "net.cir").read_text()
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "run with: ngspice -b " in result.output and "-r out.raw" not in result.output
    result = runner.invoke(app, [*args, "--dialect", "xyce"])
    assert result.exit_code == 2 and "ngspice and LTspice only" in result.output  # a ConfigError


@pytest.mark.needs_ngspice
def test_verify_writes_json_and_plot(tmp_path, flow_checkpoint):
    out = tmp_path / "out.json"
    args = [
        "spice",
        "verify",
        str(flow_checkpoint),
        "--samples",
        "2",
        "--json",
        str(out),
        "--plot",
        str(tmp_path / "p.png"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    for key in ("max_abs_error_v", "mean_abs_error_v", "nodes", "edges", "ngspice_s", "kirchhoffnet_s"):
        assert key in data
    assert data["max_abs_error_v"] <= 1e-3 and data["samples"] == 2 and data["seed"] == 0
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.needs_ngspice
def test_verify_original_result_directory(original_dir):
    result = runner.invoke(app, ["spice", "verify", str(original_dir("twomoon")), "--samples", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["edges"] == 600


@pytest.mark.needs_ngspice
def test_verify_fails_above_max_error(flow_checkpoint):
    args = ["spice", "verify", str(flow_checkpoint), "--samples", "1", "--max-error", "1e-12"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "more than --max-error 1e-12 V; tighten --reltol or --max-step" in result.output


def test_errors_are_one_line(tmp_path):
    result = runner.invoke(app, ["spice", "verify", str(tmp_path / "nothing")])
    assert result.exit_code == 1  # a missing model: a runtime failure
    assert result.output.startswith("error: ") and "is neither a checkpoint file" in result.output
    result = runner.invoke(app, ["spice", "export", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "is neither a checkpoint file" in result.output


@pytest.fixture
def mos_checkpoint(tmp_path):
    path = tmp_path / "mos.safetensors"
    kn.save(small_circuit("MosRelu", num_nodes=3, slices=2), path)
    return path


@pytest.mark.needs_ngspice
def test_verify_and_iv_with_transistors(tmp_path, mos_checkpoint):
    card = tmp_path / "card.lib"
    card.write_text(".model mine nmos (level=1 vto=0.6 kp=2e-4)\n")
    transistor_args = ["--transistors", "--model-card", str(card), "--model-name", "mine"]
    result = runner.invoke(app, ["spice", "verify", str(mos_checkpoint), "--samples", "1", *transistor_args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["max_abs_error_v"] <= 1e-3
    out = tmp_path / "iv.json"
    result = runner.invoke(
        app, ["spice", "iv", str(mos_checkpoint), "--edges", "3", "--json", str(out), *transistor_args[1:]]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["fit"]["edges"] == 6 and data["fit"]["threshold_v"] == pytest.approx(0.6, abs=1e-6)
    assert data["max_abs_error_model"] < 1e-6  # level 1 is the MosRelu law


def test_transistor_options_are_checked(tmp_path, mos_checkpoint, flow_checkpoint):
    result = runner.invoke(app, ["spice", "iv", str(mos_checkpoint), "--model-card", str(tmp_path / "none.lib")])
    assert result.exit_code == 2 and "cannot read --model-card" in result.output
    result = runner.invoke(app, ["spice", "iv", str(flow_checkpoint)])
    assert (
        result.exit_code == 2
        and "needs a model whose slices all use MosRelu; this one uses ['ShiftTanh2']" in result.output
    )
    result = runner.invoke(
        app, ["spice", "export", str(flow_checkpoint), "--transistors", "--out", str(tmp_path / "n.cir")]
    )
    assert result.exit_code == 2 and "realises MosRelu edges, but this slice uses ShiftTanh2" in result.output


@pytest.mark.needs_ngspice
def test_verify_off_a_terminal_reports_progress_as_lines(flow_checkpoint, monkeypatch):
    monkeypatch.setenv("KIRCHHOFFNET_PROGRESS_S", "0.001")
    result = runner.invoke(app, ["spice", "verify", str(flow_checkpoint), "--samples", "3"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("ngspice:")]
    assert lines and "3/3" in lines[-1], result.stderr

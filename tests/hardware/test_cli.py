"""The hw command line: outputs on the original flows, and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app

from ..conftest import small_circuit

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["hw", *args])


def test_report_writes_json_markdown_and_waveforms(original_dir, tmp_path):
    result = invoke(
        "report", str(original_dir("twomoon")), "--capacitance", "2pF", "--voltage", "fit",
        "--samples", "16", "--points-per-slice", "21", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "hw_report.json").read_text())
    assert data["latency_s"] == pytest.approx(12e-9)  # (1 + 5) τ with τ = 2 pF / 1 mS
    assert data["within_supply"] is True  # --voltage fit
    assert data["energy_j"] > 0
    assert "**latency per inference** | **12 ns**" in (tmp_path / "hw_report.md").read_text()
    assert (tmp_path / "waveforms.png").stat().st_size > 0


def test_montecarlo_and_quantize_on_original_flows(original_dir, tmp_path):
    path = str(original_dir("twomoon"))
    result = invoke("montecarlo", path, "--sigma", "0,0.05", "--trials", "2", "--points", "100", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    curve = json.loads((tmp_path / "montecarlo.json").read_text())["curves"]["twomoon"]
    assert curve[0]["values"] == [curve[0]["nominal"]] * 2  # σ = 0 is the nominal model
    assert (tmp_path / "montecarlo.png").is_file() and (tmp_path / "montecarlo.md").is_file()
    result = invoke(
        "quantize", path, "--bits", "4,10", "--scheme", "uniform", "--points", "100", "--out", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    points = json.loads((tmp_path / "quantization.json").read_text())["curves"]["twomoon uniform"]
    assert [p["bits"] for p in points] == [4, 10]


def test_noise_on_a_flow_checkpoint_with_its_dataset_in_the_metadata(tmp_path):
    flow = kn.Flow(kn.Circuit(kn.topology.fully_connect(3, (2, 2)), "ShiftTanh2", slices=2, times=(0, 0.2, 0.4)))
    kn.save(flow, tmp_path / "flow.safetensors", {"dataset": "twomoon"})
    result = invoke(
        "noise", str(tmp_path / "flow.safetensors"), "--capacitance", "1aF,1pF", "--samples", "64",
        "--points", "64", "--dt", "0.01", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "noise.json").read_text())["rows"]
    assert rows[0]["output_rms_deviation_v"] > 100 * rows[1]["output_rms_deviation_v"]  # kT/C: 10⁶ × C
    assert "energy_distance" in rows[0]


def test_run_directory_names_its_dataset_in_config_yaml(tmp_path):
    flow = kn.Flow(kn.Circuit(kn.topology.fully_connect(3), "ShiftTanh2", times=(0, 0.1)))
    kn.save(flow, tmp_path / "model.safetensors")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"task": "flow2d", "data": {"name": "8gaussians"}}))
    result = invoke(
        "quantize", str(tmp_path), "--bits", "8", "--scheme", "lut", "--points", "20", "--out", str(tmp_path)
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "{flow}", "--capacitance", "1pS"], "error: --capacitance '1pS' is in 'S' but needs F"),
        (["report", "{flow}", "--conductance", "1mF"], "error: --conductance '1mF' is in 'F' but needs S or Ohm"),
        (["report", "{flow}", "--voltage", "-1V"], "error: --voltage must be finite and positive"),
        (["report", "{flow}", "--supply", "1V,0V"], "error: supply '1V,0V' must be 'lo,hi' with lo < hi"),
        (["report", "{net}"], "error: a Network has no default inputs; pass --inputs FILE.npy"),
        (["montecarlo", "{flow}"], "error: cannot tell which metric to use for"),
        (["montecarlo", "{net}", "--dataset", "twomoon"], "error: cannot tell which metric to use for"),
        (["montecarlo", "{flow}", "--dataset", "moons"], "error: --dataset 'moons' is not a 2-D data set"),
        (["montecarlo", "{flow}", "--dataset", "twomoon", "--sigma", "a,b"], "--sigma must be a comma-separated list"),
        (
            ["montecarlo", "{flow}", "--dataset", "twomoon", "--kind", "wafer"],
            "error: --kind 'wafer' is not a variation",
        ),
        (
            ["quantize", "{flow}", "--dataset", "twomoon", "--scheme", "log"],
            "error: --scheme 'log' is not a quantization",
        ),
        (["quantize", "{flow}", "--dataset", "twomoon", "--bits", ""], "error: --bits needs at least one value"),
        (["noise", "{flow}", "--capacitance", "1pF,2"], None),
        (["report", "{missing}"], "is neither a checkpoint file"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    flow = kn.Flow(kn.Circuit(kn.topology.fully_connect(3), "ShiftTanh2", times=(0, 0.1)))
    paths = {"flow": tmp_path / "flow.safetensors", "net": tmp_path / "net.safetensors", "missing": tmp_path / "nope"}
    kn.save(flow, paths["flow"])
    kn.save(kn.Network(small_circuit(), "last1"), paths["net"])
    result = invoke(*[a.format(**{k: str(v) for k, v in paths.items()}) for a in args], "--out", str(tmp_path / "o"))
    if message is None:  # a bare number is farads: 2 F is legal, if a silly design
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_inputs_file_feeds_a_network(tmp_path):
    import numpy as np

    kn.save(kn.Network(small_circuit(), "last1"), tmp_path / "net.safetensors")
    np.save(tmp_path / "x.npy", torch.randn(4, 3).numpy())
    result = invoke(
        "report", str(tmp_path / "net.safetensors"), "--inputs", str(tmp_path / "x.npy"),
        "--points-per-slice", "11", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "hw_report.json").read_text())["num_samples"] == 4
    np.save(tmp_path / "bad.npy", np.zeros(3, dtype=np.int64))
    result = invoke("report", str(tmp_path / "net.safetensors"), "--inputs", str(tmp_path / "bad.npy"))
    assert result.exit_code == 2 and "must hold a (N, d) float array" in result.output

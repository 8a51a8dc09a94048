"""The hw command line: outputs on the original flows, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app
from kirchhoffnet.config import parse_config, write_config
from kirchhoffnet.data.images import IMAGE_SETS
from kirchhoffnet.tasks import make_task

from ..conftest import small_circuit
from ..training.helpers import tiny_flow

FASHION = Path(IMAGE_SETS["fashion_mnist"].default_root)

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


def test_report_off_a_terminal_reports_progress_as_lines(original_dir, tmp_path, monkeypatch):
    """Each of twomoon's 2 slices counts once solved and once its energies are integrated: 4 steps."""
    monkeypatch.setenv("KIRCHHOFFNET_PROGRESS_S", "0.001")
    result = invoke(
        "report", str(original_dir("twomoon")), "--samples", "8", "--points-per-slice", "11", "--out", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("hw report:")]
    assert lines and "4/4" in lines[-1] and "\r" not in result.stderr, result.stderr
    counts = [int(line.split("|")[2].split("/")[0]) for line in lines]
    assert counts == sorted(counts) and counts[0] < 4  # lines while it works, not only at the end
    json.loads(result.stdout)  # stdout stays pure JSON


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


def run_directory(path, config):
    """A run directory as `kirchhoffnet train` leaves it (config.yaml, model.safetensors), untrained."""
    task = make_task(config)
    task.prepare()
    write_config(config, path / "config.yaml")
    task.save_model(task.build_model(), path / "model.safetensors", {"task": config.task})
    return task


def test_flow_run_directory_is_scored_on_its_own_test_set(tmp_path):
    task = run_directory(tmp_path, tiny_flow("data.test_size=40"))
    result = invoke("montecarlo", str(tmp_path), "--sigma", "0", "--trials", "1", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    curve = json.loads((tmp_path / "o" / "montecarlo.json").read_text())["curves"][tmp_path.name]
    model = task.load_model(tmp_path / "model.safetensors")
    with torch.no_grad():
        expected = float(-model.log_prob(task.test_data()[0]).mean())  # all 40 test points of the run
    assert curve[0]["nominal"] == pytest.approx(expected, rel=1e-6)  # float32 sums in another order
    assert curve[0]["metric"] == "nll_nats"


@pytest.mark.needs_dataset
def test_classifier_run_directory_reports_accuracy_over_dies_and_bits(tmp_path):
    if not (FASHION / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION}")
    config = parse_config(
        {
            "task": "classify",
            "data": {"name": "fashion_mnist", "downsample": 4, "train_subset": 20, "val_size": 10},
            "circuit": {
                "topology": {
                    "name": "mix_connect", "channels": 1, "height": 7, "width": 7,
                    "kernel_size": 3, "hidden_nodes": 10, "repeat": [1, 1],
                },
                "device": "ShiftRelu1",
            },
            "solver": {"method": "rk4", "step_size": 0.25},
            "train": {"epochs": 1, "batch_size": 10, "lr": 1e-2},
        }
    )  # fmt: skip
    task = run_directory(tmp_path, config)
    out, run = tmp_path / "o", str(tmp_path)
    result = invoke("montecarlo", run, "--sigma", "0,0.1", "--trials", "2", "--points", "60", "--out", str(out))
    assert result.exit_code == 0, result.output
    zero, tenth = json.loads((out / "montecarlo.json").read_text())["curves"][tmp_path.name]
    x, y = task.test_data()
    logits = task.load_model(tmp_path / "model.safetensors")(x[:60])
    assert zero["metric"] == "accuracy" and zero["higher_is_better"] is True
    assert zero["nominal"] == float((logits.argmax(1) == y[:60]).double().mean())  # the first 60 test images
    assert zero["values"] == [zero["nominal"]] * 2  # σ = 0: the nominal circuit, exactly
    assert all(0.0 <= v <= 1.0 for v in tenth["values"])
    again = invoke("montecarlo", run, "--sigma", "0.1", "--trials", "2", "--points", "60", "--out", str(out / "again"))
    assert again.exit_code == 0, again.output
    assert json.loads((out / "again" / "montecarlo.json").read_text())["curves"][tmp_path.name] == [tenth]  # seed 0
    result = invoke("quantize", run, "--bits", "3,16", "--scheme", "uniform", "--points", "60", "--out", str(out))
    assert result.exit_code == 0, result.output
    coarse, high = json.loads((out / "quantization.json").read_text())["curves"][f"{tmp_path.name} uniform"]
    assert coarse["bits"] == 3 and 0.0 <= coarse["value"] <= 1.0
    assert abs(high["value"] - zero["nominal"]) <= 1 / 60  # 16 bits: at most one image changes its class
    result = invoke("report", run, "--samples", "8", "--points-per-slice", "11", "--out", str(out))
    assert result.exit_code == 0, result.output  # a classifier run needs no --inputs: its test images
    report = json.loads((out / "hw_report.json").read_text())
    assert report["num_samples"] == 8 and report["energy_j"] >= 0.0
    assert report["latency_s"] == pytest.approx(6e-9)  # (1 slice + 5 τ settling), τ = 1 pF / 1 mS
    result = invoke(
        "report", run, "--capacitance", "3pF", "--samples", "8", "--points-per-slice", "11", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    tripled = json.loads((out / "hw_report.json").read_text())
    assert tripled["latency_s"] == pytest.approx(3 * report["latency_s"], rel=1e-12)  # τ = C/G
    assert tripled["energy_j"] == pytest.approx(3 * report["energy_j"], rel=1e-9)  # E = C·V²·(normalised energy)


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
    assert result.exit_code == (1 if "{missing}" in args else 2), result.output  # a missing model: runtime
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
    assert result.exit_code == 2 and "must hold a (N, d) float array" in result.output  # a bad --inputs value

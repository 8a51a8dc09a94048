"""The task metric from ngspice's outputs (`kirchhoffnet spice verify --metric`) on tiny trained runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware.metrics import accuracy
from kirchhoffnet.spice import Behavioural, SpiceOptions, TransistorRelu
from kirchhoffnet.training.spice_metric import ngspice_nll, spice_metric

from .helpers import tiny_flow, tiny_regression

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
FAST = SpiceOptions(reltol=1e-6, max_step_fraction=2e-2, points=21)
"""Tolerances loose enough for seconds, tight enough that the behavioural deck agrees to ~1e-5 V."""


def classifier(device: str, data: str) -> dict:
    """Three classes of 2x2 pooled images on an 8-node circuit over two slices, logits on the last 3 nodes."""
    return {
        "task": "classify",
        "threads": 1,
        "data": {"source": "file", "path": data, "downsample": 2},
        "circuit": {
            "topology": {"name": "fully_connect", "num_nodes": 8, "repeat": [1, 1]},
            "slices": 2,
            "times": [0.0, 0.5, 1.0],
            "device": device,
        },
        "readout": "last3",
        "solver": {"rtol": 1e-3, "atol": 1e-3, "gradient": "backprop"},
        "train": {"epochs": 15, "batch_size": 16, "lr": 5e-2},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Trained classifier runs, one per device family, sharing an image file whose brightness tells the class."""
    folder = tmp_path_factory.mktemp("spice_metric")
    labels = np.arange(48) % 3
    noise = np.random.default_rng(0).integers(0, 40, size=(48, 4, 4))
    np.savez(folder / "images.npz", x=(labels[:, None, None] * 100 + noise).astype(np.uint8), y=labels)
    made = {}
    for device in ("ShiftTanh2", "MosRelu"):
        made[device] = folder / device
        kn.train(classifier(device, str(folder / "images.npz")), made[device], progress=False)
    return made


def _run_accuracy(path, samples: int) -> float:
    """The run's own model's accuracy on its first test images, as the hw studies score it."""
    opened = kn.open(path)
    x, y = opened.data(samples)
    return accuracy(x, y)(opened.model)


@pytest.mark.needs_ngspice
def test_behavioural_classifier_scores_as_kirchhoffnet(runs):
    result, report = spice_metric(runs["ShiftTanh2"], 10, options=FAST, rails=(-20.0, 20.0), jobs=2)
    assert result["metric"] == "accuracy" and result["samples"] == 10 and len(result["slices"]) == 2
    assert result["ngspice"] == result["kirchhoffnet"] == pytest.approx(_run_accuracy(runs["ShiftTanh2"], 10))
    # The logits are ngspice's own final voltages: as close to kirchhoffnet's as the waveforms, and not equal.
    assert result["class_agreement"] == 1.0 and 0 < result["max_output_difference"] <= report.max_abs_error_v + 1e-6
    for row in result["slices"]:
        assert row["error_percent_of_swing"] <= 0.01 and row["swing_v"] > 0.1  # the state moves; ngspice follows it
        assert row["error_percent_of_swing"] == pytest.approx(100 * row["max_abs_error_v"] / row["swing_v"])
    assert result["supply_energy_j_per_input"] is None  # ideal sources draw from no supply
    low, high = result["ngspice_min_v"], result["ngspice_max_v"]
    assert result["within_rails"] is True and -20 < low < high < 20
    ours = kn.open(runs["ShiftTanh2"]).model.circuit
    assert report.spice_final.shape == (10, ours.widths[-1])
    assert json.loads(json.dumps(result))["verify"]["slices"] == 2


@pytest.mark.needs_ngspice
def test_rails_that_the_nodes_cross_are_reported(runs):
    result, _ = spice_metric(runs["ShiftTanh2"], 1, options=FAST, rails=(-0.01, 0.01), jobs=1)
    assert result["within_rails"] is False and result["rails_v"] == [-0.01, 0.01]
    assert result["ngspice_min_v"] < -0.01 or result["ngspice_max_v"] > 0.01


@pytest.mark.needs_ngspice
def test_level1_transistor_classifier_scores_as_kirchhoffnet(runs):
    result, _ = spice_metric(runs["MosRelu"], 4, options=FAST, realisation=TransistorRelu(), jobs=2)
    assert result["class_agreement"] == 1.0 and result["ngspice"] == result["kirchhoffnet"]
    assert result["max_error_percent_of_swing"] <= 1.0  # level 1 is the MosRelu law itself
    assert result["within_rails"] is None
    assert result["supply_energy_j_per_input"] > 0 and result["supply_peak_power_w"] > 0  # the drain biases' draw


@pytest.mark.needs_ngspice
def test_regression_mse_from_ngspice(tmp_path):
    run = tmp_path / "regression"
    kn.train(tiny_regression(), run, progress=False)
    result, _ = spice_metric(run, 5, options=FAST, jobs=2)
    assert result["metric"] == "mse" and 0 < result["max_output_difference"] <= 1e-3
    assert result["ngspice"] == pytest.approx(result["kirchhoffnet"], rel=1e-3)
    opened = kn.open(run)
    x, y = opened.data(5)
    with torch.no_grad():
        own = float(((opened.model(x).squeeze(-1) - y) ** 2).mean())
    assert result["kirchhoffnet"] == pytest.approx(own, rel=1e-2)


@pytest.mark.needs_ngspice
def test_flow_is_scored_by_its_samples(tmp_path):
    run = tmp_path / "flow"
    kn.train(tiny_flow("train.epochs=1"), run, progress=False)
    result, _ = spice_metric(run, 4, options=FAST, jobs=2)
    assert result["metric"] == "samples" and result["dataset"] == "twomoon"
    assert np.array(result["samples_ngspice"]).shape == (4, 2)
    gap = np.abs(np.array(result["samples_ngspice"]) - np.array(result["samples_kirchhoffnet"])).max()
    assert 0 < result["max_sample_distance"] <= 1e-3 and gap <= result["max_sample_distance"]
    assert result["energy_distance_ngspice"] == pytest.approx(result["energy_distance_kirchhoffnet"], abs=1e-4)


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    """A 2-D flow trained one epoch (a field that has moved off its initialisation, in a second), 4 test points."""
    run = tmp_path_factory.mktemp("spice_nll") / "flow"
    kn.train(tiny_flow("train.epochs=1", "data.test_size=4"), run, progress=False)
    return run


@pytest.mark.needs_ngspice
def test_flow_nll_from_ngspice_is_kirchhoffnets(flow_run):
    flow = kn.open(flow_run).model
    x, _ = kn.open(flow_run).data(4)
    result = ngspice_nll(flow, x, newton_steps=1, options=FAST, jobs=2)
    # Both sides are the same behavioural circuit: FAST's ~1e-5 V and the h² of the differences, ~1e-5 nats.
    assert result["points"] == 4 and abs(result["nll_difference"]) <= 1e-3 and result["max_log_p_difference"] <= 1e-3
    with torch.no_grad():
        own = -kn.Flow(flow.circuit.double(), solver="dopri5").log_prob(x.double()).mean()
    assert result["nll_kirchhoffnet"] == pytest.approx(float(own), abs=1e-3)  # the flow's own density
    first, last = result["max_residual_v_per_newton_step"]
    assert 0 < first <= 1e-3 and last < first / 100  # one Newton step lands on x: the map is smooth
    assert result["max_residual_v"] == last and result["max_log_det_error"] <= 1e-3
    assert result["ngspice_runs"] == 2 * 4  # one netlist per point (it and its 4·d copies), per Newton round
    assert len(result["per_point"]["log_p_ngspice"]) == 4


@pytest.mark.needs_ngspice
def test_encoded_flow_nll_from_ngspice_decodes_its_volts(flow_run):
    flow = kn.open(flow_run).model
    flow.circuit.encoding = kn.circuit.Encoding(offset=0.5, scale=0.12)  # data x sit on the nodes as 0.5 + 0.12·x
    x, _ = kn.open(flow_run).data(3)
    result = ngspice_nll(flow, x, options=FAST, jobs=2)
    with torch.no_grad():
        own = -kn.Flow(flow.circuit.double(), solver="dopri5").log_prob(x.double()).mean()
    # Read as data, undecoded volts would miss x by ~0.5 V and shift the log-det by 2·log(0.12) ≈ −4.2 nats.
    assert result["nll_kirchhoffnet"] == pytest.approx(float(own), abs=1e-3)
    assert abs(result["nll_difference"]) <= 1e-3 and result["max_residual_v"] <= 1e-4
    assert result["step_v"] == pytest.approx((3 * (FAST.reltol + FAST.vntol)) ** (1 / 3))  # h in volts, as unencoded


class SlowCapacitors(Behavioural):
    """Behavioural sources with every node capacitor 3 % larger in the netlist (the currents stay in units of 1 A)."""

    current_scale_a = 1.03


@pytest.mark.needs_ngspice
def test_nll_from_ngspice_sees_a_capacitor_change(flow_run):
    flow = kn.open(flow_run).model
    x, _ = kn.open(flow_run).data(4)
    result = ngspice_nll(flow, x, newton_steps=1, options=FAST, realisation=SlowCapacitors(), jobs=2)
    # 3 % slower dynamics move the NLL by 0.017 nats here (max 0.04 per point); the exact deck by 2e-5.
    assert abs(result["nll_difference"]) >= 0.01 and result["max_residual_v"] <= 1e-3  # Newton still lands on x


@pytest.mark.needs_ngspice
def test_command_reports_the_nll_from_ngspice(flow_run):
    args = ["spice", "verify", str(flow_run), "--metric", "--samples", "1", "--nll-points", "5", "--newton-steps", "1"]
    result = runner.invoke(app, [*args, "--reltol", "1e-6", "--max-step", "2e-2", "--points", "21", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    nll = json.loads(result.stdout)["nll"]
    assert nll["points"] == 4 and "holds 4 points, fewer than --nll-points 5" in result.stderr
    assert nll["newton_steps"] == 1 and abs(nll["nll_difference"]) <= 1e-3  # as the library call above


@pytest.mark.needs_ngspice
def test_command_prints_pure_json(runs, tmp_path):
    out = tmp_path / "report.json"
    args = ["spice", "verify", str(runs["ShiftTanh2"]), "--metric", "--samples", "50", "--rails", "-20", "20"]
    result = runner.invoke(app, [*args, "--reltol", "1e-6", "--max-step", "2e-2", "--points", "21", "--json", str(out)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["metric"] == "accuracy" and printed["within_rails"] is True
    assert printed["samples"] == 10 and "holds 10 inputs, fewer than --samples 50" in result.stderr
    assert json.loads(out.read_text()) == printed


def test_hostile_requests_are_one_line(runs, flow_run, tmp_path):
    with pytest.raises(ConfigError, match="--samples must be a positive count, got 0"):
        spice_metric(runs["ShiftTanh2"], 0)
    with pytest.raises(ConfigError, match="--rails LOW HIGH needs LOW < HIGH"):
        spice_metric(runs["ShiftTanh2"], 1, rails=(1.0, 0.0))
    circuit = tmp_path / "circuit.safetensors"
    kn.save(kn.Circuit(kn.topology.fully_connect(3), "ShiftTanh2"), circuit)
    with pytest.raises(ConfigError, match="--metric scores classification and regression runs"):
        spice_metric(circuit, 1)
    network = tmp_path / "network.safetensors"
    kn.save(kn.Network(kn.Circuit(kn.topology.fully_connect(3), "ShiftTanh2"), "last1"), network)
    with pytest.raises(ConfigError, match="--metric scores classification and regression runs"):
        spice_metric(network, 1)
    cases = [
        (["--metric", "--samples", "0"], "Invalid value for '--samples'"),
        (["--rails", "0", "1"], "--rails is checked on the --metric report; add --metric"),
        (["--metric", "--rails", "1", "0"], "--rails LOW HIGH needs LOW < HIGH"),
        (["--metric", "--keep-raw", str(tmp_path / "raw")], "--keep-raw keeps the files of a plain verify"),
        (["--nll-points", "4"], "--nll-points and --newton-steps are part of the --metric report; add --metric"),
        (["--metric", "--newton-steps", "1"], "--newton-steps refines the points of --nll-points; add --nll-points"),
        (["--metric", "--nll-points", "-1"], "--nll-points must be a count of data points (0: no NLL), got -1"),
        (["--metric", "--nll-points", "4"], "--nll-points scores a flow's density, but this is a Network"),
    ]
    with pytest.raises(ConfigError, match="--newton-steps must be a count of Newton steps"):
        spice_metric(flow_run, 1, nll_points=1, newton_steps=-1)  # before ngspice runs
    with pytest.raises(ConfigError, match="the NLL from ngspice needs a kirchhoffnet Flow, got Network"):
        ngspice_nll(kn.open(runs["ShiftTanh2"]).model, torch.zeros(1, 2))
    for extra, message in cases:
        result = runner.invoke(app, ["spice", "verify", str(runs["ShiftTanh2"]), *extra])
        assert result.exit_code != 0 and message in result.output, result.output
        if "--samples" not in extra:  # typer's own usage error is its box; ours are one line
            assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kirchhoffnet.cli.main import app
from kirchhoffnet.config import parse_config
from kirchhoffnet.data.images import IMAGE_SETS
from kirchhoffnet.data.points import sample_points
from kirchhoffnet.data.toy2d import sample_toy
from kirchhoffnet.diffusion import kl_pooled
from kirchhoffnet.diffusion.run import build_model, load_run
from kirchhoffnet.diffusion.sampling import sample_run, speed_energy
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
from kirchhoffnet.errors import ConfigError

TINY_RING = """
task: diffusion
data: ring
seed: 2
model: {kind: kirchhoffnet, hidden: 4, time_nodes: 4, repeat: 1, settle_steps: 2}
train: {epochs: 1, steps_per_epoch: 15, batch_size: 64, lr: 0.003, grad_clip: 1.0, ema_decay: 0.999}
sample: {steps: 8}
evaluate: {num_samples: 200}
"""


@pytest.fixture(scope="module")
def circuit_run(tmp_path_factory):
    """A tiny run of the default score circuit, trained through the CLI with --set overriding the kind's settings."""
    root = tmp_path_factory.mktemp("circuit")
    (root / "tiny.yaml").write_text(TINY_RING.replace("hidden: 4, time_nodes: 4, repeat: 1, settle_steps: 2", ""))
    args = ["train", str(root / "tiny.yaml"), "--set", "model.settle_steps=2", "--out", str(root / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return root / "run"


def test_cli_trains_a_score_circuit(circuit_run):
    run = load_run(circuit_run)
    assert isinstance(run.model, CircuitScoreModel) and run.config.model.kind == "kirchhoffnet"
    assert run.model.circuit.num_nodes == 1 + 2 + 32 + 8  # the default score circuit
    assert run.config.model.settle_steps == 2


def test_sample_and_evaluate_a_score_circuit(circuit_run, tmp_path):
    out = tmp_path / "x.npy"
    result = CliRunner().invoke(
        app, ["diffusion", "sample", str(circuit_run), "-n", "30", "--solver", "pf-ode", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert np.load(out).shape == (30, 2)
    result = CliRunner().invoke(app, ["diffusion", "evaluate", str(circuit_run)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((circuit_run / "evaluation.json").read_text())
    assert metrics["model"] == "kirchhoffnet" and metrics["pf-ode"]["kl_pooled"] is not None
    hw = metrics["hardware"]
    assert hw["latency_s"] > 0 and hw["energy_j"] > 0 and hw["energy_rail_bound_j"] > 0
    assert metrics["full_transient"]["max_departure_from_quasi_static"] >= 0
    assert math.isfinite(metrics["nll"]["nats"]) and metrics["nll"]["points"] == metrics["num_samples"]
    assert (circuit_run / "samples.png").is_file()


def test_a_flow_data_set_is_a_task_of_the_score_circuit(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_RING.replace("data: ring", "data: pinwheel"))
    out = tmp_path / "run"
    args = ["train", str(tmp_path / "tiny.yaml"), "--set", "data=twomoon"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_run(out).config.data == "twomoon"  # --set overrides the file's
    result = CliRunner().invoke(app, ["diffusion", "evaluate", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "evaluation.json").read_text())
    assert metrics["data"] == "twomoon" and math.isfinite(metrics["nll"]["nats"])
    # the reference and the noise floor are twomoon points (reference seed 12345, the floor's draw 12346)
    reference, floor = sample_points("twomoon", 200, seed=12345), sample_points("twomoon", 200, seed=12346)
    assert metrics["noise_floor"]["kl_pooled"] == pytest.approx(kl_pooled(floor, reference))
    assert kl_pooled(sample_points("ring", 200, seed=12346), reference) > 2 * metrics["noise_floor"]["kl_pooled"]
    np.testing.assert_array_equal(floor.numpy(), sample_toy("twomoon", 200, seed=12346).astype(np.float32))
    result = CliRunner().invoke(app, ["train", str(tmp_path / "tiny.yaml"), "--set", "data=moons"])
    assert result.exit_code == 2 and "data: must be one of ring, twomoon" in result.output


def test_circuit_runs_refuse_rram_solvers(circuit_run):
    run = load_run(circuit_run)
    with pytest.raises(ConfigError, match=r"circuit score model cannot sample with 'analog' \(reverse-sde/analog\)"):
        sample_run(run, 10, "analog")
    with pytest.raises(ConfigError, match=r"program an RRAM chip, and pf-ode .* runs on none"):
        sample_run(run, 10, "pf-ode", prog_noise=0.1)
    with pytest.raises(ConfigError, match="speed-energy models the RRAM loop"):
        speed_energy(run)


def _circuit_config(**settings):
    train = {"epochs": 1, "steps_per_epoch": 1, "batch_size": 8, "lr": 1e-3}
    return parse_config(
        {"task": "diffusion", "data": "ring", "train": train, "model": {"kind": "kirchhoffnet"}, **settings}
    )


def test_kirchhoffnet_config_builds_the_default_circuit():
    config = _circuit_config()
    model = build_model(config)
    assert isinstance(model, CircuitScoreModel)
    assert model.circuit.num_nodes == 43 and model.num_classes == 0


def test_latent_kirchhoffnet_config_adds_one_class_source_per_class():
    config = _circuit_config(data="latent", latent={"classes": [1, 5, 8, 9]})
    model = build_model(config)
    assert isinstance(model, CircuitScoreModel) and model.num_classes == 4
    assert model.circuit.num_nodes == 43 + 4


def test_hw_report_of_a_score_circuit_run_is_per_generation(circuit_run, tmp_path):
    def report(*options):
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        args = ["hw", "report", str(circuit_run), "--samples", "20", "--out", str(out), *options]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads((out / "hw_report.json").read_text()), (out / "hw_report.md").read_text()

    small, page = report("--capacitance", "1pF")
    large, _ = report("--capacitance", "2pF")
    assert small["latency_s"] > 0 and small["energy_j"] > 0 and "**latency per generation**" in page
    assert large["latency_s"] == pytest.approx(2 * small["latency_s"])  # τ = C₀ / G₀
    assert large["energy_j"] == pytest.approx(2 * small["energy_j"])  # energies scale as C₀ V₀²
    fitted, _ = report("--voltage", "fit", "--supply", "-0.5V,0.5V")
    low, high = fitted["node_voltage_range_v"]
    assert fitted["within_supply"] and max(-low, high) == pytest.approx(0.5)


def test_hw_report_of_a_score_circuit_run_reports_progress_over_the_steps(circuit_run, tmp_path, monkeypatch):
    monkeypatch.setenv("KIRCHHOFFNET_PROGRESS_S", "0.001")
    result = CliRunner().invoke(app, ["hw", "report", str(circuit_run), "--samples", "4", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    steps = load_run(circuit_run).config.sample.steps
    lines = [line for line in result.stderr.splitlines() if line.startswith("hw report:")]
    assert lines and f"{steps}/{steps}" in lines[-1], result.stderr
    json.loads(result.stdout)  # stdout stays pure JSON


@pytest.mark.needs_ngspice
def test_spice_command_exports_and_verifies_a_score_circuit(circuit_run, tmp_path):
    result = CliRunner().invoke(app, ["diffusion", "spice", str(circuit_run), "--samples", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    check = json.loads((tmp_path / "spice_check.json").read_text())
    assert check["samples"] == 1 and check["final_abs_error_v"] < 1e-4  # the generated sample, ngspice vs ours
    assert (tmp_path / "score_circuit.cir").read_text().rstrip().endswith(".end")


TINY_LATENT = """
task: diffusion
data: latent
model: {kind: kirchhoffnet, hidden: 4, time_nodes: 4, repeat: 1, settle_steps: 20, contraction: null, passive: true}
latent: {max_train_images: 300, vae_epochs: 1, classifier_epochs: 1}
train: {epochs: 1, steps_per_epoch: 20, batch_size: 64, lr: 0.003}
sample: {steps: 8, guidance: 1.0}
evaluate: {num_samples: 60, guidance_sweep: [0.0, 2.0]}
"""


@pytest.mark.needs_dataset
def test_latent_task_on_a_score_circuit_end_to_end(tmp_path):
    if not (Path(IMAGE_SETS["fashion_mnist"].default_root) / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    (tmp_path / "latent.yaml").write_text(TINY_LATENT)
    run_dir = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(tmp_path / "latent.yaml"), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    run = load_run(run_dir)
    assert isinstance(run.model, CircuitScoreModel) and run.model.circuit.num_nodes == 1 + 2 + 4 + 4 + 3
    result = runner.invoke(app, ["diffusion", "evaluate", str(run_dir)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "evaluation.json").read_text())
    assert metrics["model"] == "kirchhoffnet" and "analog" not in metrics  # the circuit's own samplers only
    for solver in ("pf-ode", "euler"):
        assert 0.0 <= metrics[solver]["accuracy"] <= 1.0 and len(metrics[solver]["accuracy_per_class"]) == 3
    assert [r["guidance"] for r in metrics["guidance_sweep"]["results"]] == [0.0, 2.0]
    hardware = metrics["hardware"]  # guidance 1: the labelled copy and the unconditional one
    assert hardware["circuit_copies"] == 2 and hardware["num_devices"] == 2 * (run.model.circuit.edges.num_edges + 4)
    assert hardware["energy_j"] > 0 and hardware["latency_s"] > 0
    for name in ("images.png", "latents.png", "guidance.png"):
        assert (run_dir / name).is_file()
    out = tmp_path / "x.npy"
    args = ["diffusion", "sample", str(run_dir), "-n", "5", "--solver", "pf-ode", "--label", "2", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert np.load(out).shape == (5, 2) and np.isfinite(np.load(out)).all()

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from kirchhoffnet.cli.main import app
from kirchhoffnet.data.toy2d import sample_toy
from kirchhoffnet.diffusion import kl_pooled, sample_points
from kirchhoffnet.diffusion.circuit_score import CircuitScoreModel
from kirchhoffnet.diffusion.config import parse_config
from kirchhoffnet.diffusion.run import load_run, sample_run, speed_energy
from kirchhoffnet.errors import ConfigError

TINY_RING = """
task: ring
seed: 2
circuit: {hidden: 4, time_nodes: 4, repeat: 1, settle_steps: 2}
train: {steps: 15, batch_size: 64}
sample: {steps: 8}
evaluate: {num_samples: 200}
"""


@pytest.fixture(scope="module")
def circuit_run(tmp_path_factory):
    """A tiny run trained through the CLI with --model kirchhoffnet (the config itself says nothing of the kind)."""
    root = tmp_path_factory.mktemp("circuit")
    (root / "tiny.yaml").write_text(TINY_RING.replace("circuit:", "# circuit:"))
    args = ["diffusion", "train", str(root / "tiny.yaml"), "--model", "kirchhoffnet", "--out", str(root / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return root / "run"


def test_cli_trains_a_score_circuit(circuit_run):
    run = load_run(circuit_run)
    assert isinstance(run.model, CircuitScoreModel) and run.config.model.kind == "kirchhoffnet"
    assert run.model.circuit.num_nodes == 1 + 2 + 32 + 8  # the default circuit section


def test_sample_and_evaluate_a_score_circuit(circuit_run, tmp_path):
    out = tmp_path / "x.npy"
    result = CliRunner().invoke(
        app, ["diffusion", "sample", str(circuit_run), "-n", "30", "--solver", "pf-ode", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert np.load(out).shape == (30, 2)
    result = CliRunner().invoke(app, ["diffusion", "evaluate", str(circuit_run)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((circuit_run / "metrics.json").read_text())
    assert metrics["model"] == "kirchhoffnet" and metrics["pf-ode"]["kl_pooled"] is not None
    hw = metrics["hardware"]
    assert hw["latency_s"] > 0 and hw["energy_j"] > 0 and hw["energy_rail_bound_j"] > 0
    assert metrics["full_transient"]["max_departure_from_quasi_static"] >= 0
    assert math.isfinite(metrics["nll"]["nats"]) and metrics["nll"]["points"] == metrics["num_samples"]
    assert (circuit_run / "samples.png").is_file()


def test_a_flow_data_set_is_a_task_of_the_score_circuit(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_RING.replace("task: ring", "task: pinwheel\nmodel: {kind: kirchhoffnet}"))
    out = tmp_path / "run"
    args = ["diffusion", "train", str(tmp_path / "tiny.yaml"), "--task", "twomoon"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_run(out).config.task == "twomoon"  # --task overrides the file's
    result = CliRunner().invoke(app, ["diffusion", "evaluate", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "twomoon" and math.isfinite(metrics["nll"]["nats"])
    # the reference and the noise floor are twomoon points (reference seed 12345, the floor's draw 12346)
    reference, floor = sample_points("twomoon", 200, seed=12345), sample_points("twomoon", 200, seed=12346)
    assert metrics["noise_floor"]["kl_pooled"] == pytest.approx(kl_pooled(floor, reference))
    assert kl_pooled(sample_points("ring", 200, seed=12346), reference) > 2 * metrics["noise_floor"]["kl_pooled"]
    np.testing.assert_array_equal(floor.numpy(), sample_toy("twomoon", 200, seed=12346).astype(np.float32))
    result = CliRunner().invoke(app, ["diffusion", "train", str(tmp_path / "tiny.yaml"), "--task", "moons"])
    assert result.exit_code != 0 and "with --task: task: Value error, unknown task 'moons'" in result.output


def test_circuit_runs_refuse_rram_solvers(circuit_run):
    run = load_run(circuit_run)
    with pytest.raises(ConfigError, match="samples with --solver euler or pf-ode and no --prog-noise"):
        sample_run(run, 10, "analog")
    with pytest.raises(ConfigError, match="speed-energy models the RRAM loop"):
        speed_energy(run)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"circuit": {"hidden": 4}}, "the 'circuit' section applies to model.kind: kirchhoffnet only"),
        ({"model": {"kind": "kirchhoffnet", "width": 20}}, "model.width applies to model.kind: crossbar"),
        ({"model": {"kind": "kirchhoffnet"}, "task": "latent"}, "is unconditional: use task: ring"),
        (
            {"model": {"kind": "kirchhoffnet"}, "train": {"noise_aware": {"std": 0.1}}},
            "remove it for model.kind: kirchhoffnet",
        ),
        ({"model": {"kind": "kirchhoffnet"}, "sample": {"sde_score_gain": 1.25}}, "sde_score_gain must be 1"),
        ({"model": {"kind": "kirchhoffnet"}, "circuit": {"time_nodes": 5}}, "circuit: .*time_nodes must be even"),
        ({"model": {"kind": "kirchhoffnet"}, "circuit": {"contraction": 1.5}}, "circuit.contraction"),
        ({"model": {"kind": "kirchhoffnet"}, "circuit": {"passive": True}}, "circuit: .*set contraction: null"),
        ({"model": {"kind": "kirchhoffnet"}, "circuit": {"wires": 3}}, "circuit.wires: Extra inputs"),
        ({"model": {"kind": "analogue"}}, "model.kind"),
    ],
)
def test_config_errors_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(data, "cfg.yaml")


def test_kirchhoffnet_config_fills_the_circuit_section():
    config = parse_config({"model": {"kind": "kirchhoffnet"}})
    assert config.circuit is not None and config.circuit.num_nodes == 43


@pytest.mark.needs_ngspice
def test_spice_command_exports_and_verifies_a_score_circuit(circuit_run, tmp_path):
    result = CliRunner().invoke(app, ["diffusion", "spice", str(circuit_run), "--samples", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    check = json.loads((tmp_path / "spice_check.json").read_text())
    assert check["samples"] == 1 and check["final_abs_error_v"] < 1e-4  # the generated sample, ngspice vs ours
    assert (tmp_path / "score_circuit.cir").read_text().rstrip().endswith(".end")

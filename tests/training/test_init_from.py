"""train.init_from: a run starts from a trained model's parameters (fine-tuning, e.g. under another solver),
refused in one line when the file is not a model of the config's structure."""

from __future__ import annotations

import shutil

import pytest
import torch

from kirchhoffnet.errors import CheckpointError
from kirchhoffnet.training import open_run, train

from .helpers import tiny_flow, tiny_regression


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("init") / "run"
    return run, train(tiny_flow("train.epochs=2"), run, progress=False)


def _first_validation(result) -> float:
    return result.metrics["history"]["val_loss"][0]  # epoch 0: the model before any step


@pytest.mark.parametrize("source", ["directory", "file"])
def test_a_run_starts_from_the_trained_parameters(trained, tmp_path, source):
    run, first = trained
    path = run if source == "directory" else run / "model.safetensors"
    again = train(tiny_flow("train.epochs=1", f"train.init_from={path}"), tmp_path / "again", progress=False)
    # The same held-out points through the same parameters: epoch 0 of the new run is the old run's end.
    assert _first_validation(again) == pytest.approx(first.metrics["history"]["val_loss"][-1], rel=1e-6)
    fresh = train(tiny_flow("train.epochs=1"), tmp_path / "fresh", progress=False)
    assert _first_validation(fresh) > _first_validation(again) + 0.1  # an untrained flow is far worse


def test_the_solver_is_the_new_configs(trained, tmp_path):
    run, first = trained
    config = tiny_flow("train.epochs=1", f"train.init_from={run}", "solver.method=euler", "solver.step_size=0.5")
    coarse = train(config, tmp_path / "coarse", progress=False)
    assert coarse.model.solver.method == "euler"
    for name, value in first.model.state_dict().items():
        assert coarse.model.state_dict()[name].shape == value.shape


def test_a_baseline_starts_from_its_trained_parameters(tmp_path):
    mlp, no_circuit = "baseline={hidden: [8]}", "circuit=null"
    first = train(tiny_regression(no_circuit, mlp, "train.epochs=2"), tmp_path / "a", progress=False)
    config = tiny_regression(no_circuit, mlp, f"train.init_from={tmp_path / 'a'}")
    again = train(config, tmp_path / "b", progress=False)
    assert _first_validation(again) == pytest.approx(first.metrics["history"]["val_loss"][-1], rel=1e-6)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["circuit.topology.repeat=[3, 3]"], r"does not match the model this config builds: tensor .* has shape"),
        (["circuit.capacitance=2.0"], r"its .* differs from this config's \(another topology\?\)"),
    ],
)
def test_another_structure_is_refused_before_training(trained, tmp_path, overrides, message):
    run, _ = trained
    with pytest.raises(CheckpointError, match=rf"^train\.init_from {run}/model\.safetensors.*{message}"):
        train(tiny_flow("train.epochs=1", f"train.init_from={run}", *overrides), tmp_path / "x", progress=False)
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


def test_a_missing_or_foreign_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        train(tiny_flow(f"train.init_from={tmp_path / 'nothing.safetensors'}"), tmp_path / "x", progress=False)
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError):
        train(tiny_flow(f"train.init_from={foreign}"), tmp_path / "y", progress=False)


def test_a_resume_keeps_its_own_parameters(trained, tmp_path):
    run, _ = trained
    path = tmp_path / "copy.safetensors"
    path.write_bytes((run / "model.safetensors").read_bytes())
    config = tiny_flow("train.epochs=2", "train.checkpoint_every_steps=1", f"train.init_from={path}")

    def interrupt(info: dict) -> None:
        if info["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "ft", progress=False, on_step=interrupt)
    path.unlink()  # the source is gone: a resume reads only its own checkpoint
    resumed = train(config, tmp_path / "ft", resume=True, progress=False)
    assert resumed.metrics["status"] == "finished"
    assert all(torch.isfinite(p).all() for p in resumed.model.parameters())


def test_a_run_whose_config_names_another_capacitance_is_refused_on_open(trained, tmp_path):
    """The same buffer check guards opening a run (Task.check_saved) as starting from one."""
    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = copy / "config.yaml"
    config.write_text(config.read_text().replace("capacitance: 1.0", "capacitance: 2.0"))
    assert "capacitance: 2.0" in config.read_text()
    message = r"model\.safetensors does not match the run's config\.yaml: its \S+capacitance differs from the config's"
    with pytest.raises(CheckpointError, match=message):
        open_run(copy)

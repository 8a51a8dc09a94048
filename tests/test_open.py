"""``kn.open``: one way to open any saved model (issue 21 item 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

import kirchhoffnet as kn
from kirchhoffnet.config import Config
from kirchhoffnet.errors import CheckpointError
from kirchhoffnet.runs import OpenedRun, kind_of

from .training.helpers import tiny_flow, tiny_regression

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory) -> tuple[Path, kn.Flow]:
    run_dir = tmp_path_factory.mktemp("flow") / "run"
    result = kn.train(tiny_flow("train.epochs=1", "data.test_size=64"), run_dir, progress=False)
    return run_dir, result.model


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def _rewrite(source: Path, target: Path, edit) -> Path:
    with safe_open(str(source), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        header = dict(handle.metadata())
    edit(tensors, header)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(target), metadata=header)
    return target


def _copy_run(run_dir: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for name in ("config.yaml", "model.safetensors", "metrics.json"):
        shutil.copy(run_dir / name, target / name)
    return target


# ---- one test per kind of input -----------------------------------------------------------------


def test_a_run_directory_opens_with_its_task_data_and_metric(flow_run):
    run_dir, _ = flow_run
    opened = kn.open(run_dir)
    assert isinstance(opened, OpenedRun) and opened.kind == "run" and opened.path == run_dir
    assert isinstance(opened.config, Config) and opened.task is not None and opened.dataset == "twomoon"
    x, y = opened.data()
    assert y is None and x.shape == (64, 2) and torch.equal(x, opened.task.test_data()[0])
    assert opened.data(points=5)[0].shape == (5, 2)
    saved = json.loads((run_dir / "metrics.json").read_text())["test"]["nll_nats"]
    assert opened.metric.name == "nll_nats" and opened.metric.value == saved
    assert opened.metric.higher_is_better is False
    with pytest.raises(AttributeError):  # frozen
        opened.kind = "other"  # type: ignore[misc]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_opened_model_gives_bit_identical_outputs_to_the_model_the_run_trained(dtype, tmp_path):
    result = kn.train(tiny_flow("train.epochs=1", f"dtype={dtype}"), tmp_path / "run", progress=False)
    opened = kn.open(tmp_path / "run")
    assert type(opened.model) is type(result.model) and not opened.model.training
    x = opened.data()[0]
    with torch.no_grad():
        expected, got = result.model.eval().log_prob(x), opened.model.log_prob(x)
        samples = opened.model.sample(x[:16])
    assert got.dtype == getattr(torch, dtype) and torch.equal(got, expected)
    with torch.no_grad():
        assert torch.equal(samples, result.model.sample(x[:16]))


def test_a_regression_run_reopens_its_network_exactly(tmp_path):
    result = kn.train(tiny_regression(), tmp_path / "run", progress=False)
    opened = kn.open(tmp_path / "run")
    x, y = opened.data()
    assert y is not None and opened.metric.name == "mse" and opened.metric.value is not None
    with torch.no_grad():
        assert torch.equal(opened.model(x), result.model.eval()(x))


def test_a_regression_baseline_run_reopens_its_mlp(tmp_path):
    from kirchhoffnet.models.baselines import MLP

    config = tiny_regression().model_dump(mode="json")
    config["circuit"], config["baseline"] = None, {"hidden": [4]}
    result = kn.train(config, tmp_path / "run", progress=False)
    opened = kn.open(tmp_path / "run")
    assert opened.kind == "run" and isinstance(opened.model, MLP)
    x, _ = opened.data()
    with torch.no_grad():
        assert torch.equal(opened.model(x), result.model.eval()(x))


def test_a_diffusion_run_opens_like_any_run(tmp_path):
    from kirchhoffnet.config import DiffusionConfig
    from kirchhoffnet.tasks.diffusion import DiffusionTask

    config = {
        "task": "diffusion",
        "data": "ring",
        "seed": 1,
        "model": {"kind": "crossbar", "width": 4},
        "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 16, "lr": 1e-3},
        "sample": {"steps": 5},
        "evaluate": {"num_samples": 100},
    }
    out = tmp_path / "run"
    result = kn.train(config, out, progress=False)
    opened = kn.open(out)
    assert opened.kind == "diffusion-run" == kind_of(out)
    assert isinstance(opened.task, DiffusionTask) and isinstance(opened.config, DiffusionConfig)
    assert opened.run is not None and opened.run.model is opened.model and opened.run.path == out
    assert opened.metric.name == "kl_pooled" and opened.metric.value == result.metrics["test"]["kl_pooled"]
    x, y = opened.data(50)
    assert x.shape == (50, 2) and y is None
    s = torch.full((50,), 0.3)
    with torch.no_grad():
        assert torch.equal(opened.model.score(x, s), result.model.eval().score(x, s))
    with pytest.raises(CheckpointError, match=r"diffusion score-model \(a run of a diffusion config\)"):
        kn.runs.load_model(out)  # the circuit tools refuse it, naming the commands that read it


def test_a_bare_checkpoint_file_opens_from_its_own_spec(tmp_path):
    flow = kn.Flow(kn.Circuit(kn.topology.fully_connect(3, (2, 2)), "ShiftTanh2", slices=1))
    path = kn.save(flow, tmp_path / "f.safetensors", {"dataset": "twomoon"})
    opened = kn.open(path)
    assert opened.kind == "checkpoint-file" and opened.task is None and opened.config is None
    assert opened.dataset == "twomoon" and opened.metric.name == "nll_nats" and opened.metric.value is None
    assert opened.metadata == {"dataset": "twomoon"}
    x, y = opened.data(points=20, seed=3)
    assert x.shape == (20, 2) and y is None
    assert torch.equal(x, opened.data(points=20, seed=3)[0]) and not torch.equal(x, opened.data(20, seed=4)[0])
    with torch.no_grad():
        assert torch.equal(opened.model.log_prob(x.float()), flow.log_prob(x.float()))


def test_an_original_checkpoint_opens_with_its_config_and_test_bench(original_dir):
    opened = kn.open(original_dir("twomoon"))
    assert opened.kind == "original-checkpoint" and isinstance(opened.model, kn.Flow)
    assert opened.config["test_bench"] == "twomoon" and opened.dataset == "twomoon"
    assert opened.task is None and opened.metric.name == "nll_nats"
    assert opened.data(points=10)[0].shape == (10, 2)


def test_kn_open_is_exported():
    assert "open" in kn.__all__ and kn.open is kn.runs.open


# ---- anything else, and hostile files: one line each ---------------------------------------------


def test_anything_else_is_one_line_naming_what_was_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "missing", tmp_path / "empty"):
        with pytest.raises(CheckpointError) as exc:
            kn.open(target)
        line = _one_line(exc)
        assert "is neither a checkpoint file, a run directory with model.safetensors" in line
        assert "original result directory with config.yaml and model.pth" in line


def test_a_truncated_checkpoint_is_one_line(flow_run, tmp_path):
    run_dir, _ = flow_run
    data = (run_dir / "model.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is not a readable safetensors checkpoint") as exc:
        kn.open(tmp_path / "cut.safetensors")
    _one_line(exc)
    copy = _copy_run(run_dir, tmp_path / "run")
    (copy / "model.safetensors").write_bytes(data[:100])
    with pytest.raises(CheckpointError, match="is not a readable safetensors checkpoint") as exc:
        kn.open(copy)
    _one_line(exc)


def test_a_spec_that_does_not_match_its_tensors_is_one_line(flow_run, tmp_path):
    run_dir, _ = flow_run

    def more_nodes(tensors, header):
        spec = json.loads(header["spec"])
        spec["circuit"]["slices"][0]["num_nodes"] = 2
        header["spec"] = json.dumps(spec)

    bad = _rewrite(run_dir / "model.safetensors", tmp_path / "bad.safetensors", more_nodes)
    with pytest.raises(CheckpointError, match=r"bad.safetensors: .*circuit.slices.0") as exc:
        kn.open(bad)
    _one_line(exc)


def test_a_config_that_disagrees_with_the_checkpoint_spec_is_one_line(flow_run, tmp_path):
    run_dir, _ = flow_run
    copy = _copy_run(run_dir, tmp_path / "solver")
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["solver"]["rtol"] = 1e-6
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(
        CheckpointError, match=r"does not match the run's config.yaml: spec.solver.rtol is 0.001 in the checkpoint"
    ) as exc:
        kn.open(copy)
    _one_line(exc)

    copy = _copy_run(run_dir, tmp_path / "topology")
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["circuit"]["topology"][0]["repeat"] = [1, 1]
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError, match=r"does not match the run's config.yaml") as exc:
        kn.open(copy)
    _one_line(exc)

    copy = _copy_run(run_dir, tmp_path / "capacitance")
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["circuit"]["capacitance"] = 2.0
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError, match=r"does not match the run's config.yaml: its circuit.slices.0.cap"):
        kn.open(copy)


def test_a_model_file_of_another_kind_in_a_run_is_one_line(flow_run, tmp_path):
    run_dir, _ = flow_run
    copy = _copy_run(run_dir, tmp_path / "run")
    network = kn.Network(kn.Circuit(kn.topology.fully_connect(3, (2, 2)), "ShiftTanh2", slices=2), "last1")
    kn.save(network, copy / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match the run's config.yaml") as exc:
        kn.open(copy)
    _one_line(exc)


@pytest.mark.parametrize("section", ["solver", "grid", "train"])
def test_a_run_config_with_a_section_cut_away_is_one_line(flow_run, section, tmp_path):
    """A truncated or hand-edited config.yaml would otherwise rebuild the run with defaults (solver, grid)
    it was not trained with; every road that reads a run refuses it, naming what is missing."""
    run = _copy_run(flow_run[0], tmp_path / "run")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved[section]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(kn.KirchhoffError) as exc:
        kn.open(run)
    line = _one_line(exc)
    # sections with defaults are the guard's (the config alone would validate); a required one the schema's
    expected = f"{section}: required setting is missing" if section == "train" else f"lacks {section}: it is not"
    assert expected in line
    with pytest.raises(kn.KirchhoffError, match=f"lacks {section}|{section}"):
        kn.training.evaluate_run(run, tmp_path / "eval")
    assert not (tmp_path / "eval").exists()

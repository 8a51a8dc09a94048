"""Saved models opened for the hardware studies: which metric, which inputs, which labels."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.config import write_config
from kirchhoffnet.data import sample_toy
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware import PhysicalDesign
from kirchhoffnet.runs import OpenedRun
from kirchhoffnet.tasks import make_task
from kirchhoffnet.training.hw import (
    flow_dataset,
    hw_report,
    open_saved,
    open_with_metrics,
    study_inputs,
    study_metric,
    task_metric,
)

from ..conftest import small_circuit
from .helpers import tiny_flow, tiny_regression


@pytest.fixture(autouse=True)
def single_thread(one_torch_thread):
    """Tiny solves: one thread (see tests/conftest.py)."""


def run_directory(path, config):
    """A run directory as `kirchhoffnet train` leaves it (config.yaml, model.safetensors), untrained."""
    path.mkdir(parents=True, exist_ok=True)
    task = make_task(config)
    task.prepare()
    write_config(config, path / "config.yaml")
    task.save_model(task.build_model(), path / "model.safetensors", {"task": config.task})
    return task


def flow2d(dim: int = 2) -> kn.Flow:
    return kn.Flow(kn.Circuit(kn.topology.fully_connect(dim + 1, (2, 2)), "ShiftTanh2", slices=2, times=(0, 0.2, 0.4)))


def test_flow_dataset_reads_every_place_a_data_set_is_named(tmp_path):
    flow = flow2d()
    kn.save(flow, tmp_path / "named.safetensors", {"dataset": "pinwheel"})
    kn.save(flow, tmp_path / "bench.safetensors", {"test_bench": "rings"})
    kn.save(flow, tmp_path / "bare.safetensors")
    run_directory(tmp_path / "run", tiny_flow("data.name=8gaussians"))
    assert flow_dataset(tmp_path / "named.safetensors") == "pinwheel"
    assert flow_dataset(tmp_path / "bench.safetensors") == "rings"
    assert flow_dataset(tmp_path / "named.safetensors", "circle") == "circle"  # --dataset wins
    assert flow_dataset(tmp_path / "run") == "8gaussians"  # the run's config.yaml
    assert flow_dataset(tmp_path / "bare.safetensors") is None
    assert flow_dataset(tmp_path / "nowhere") is None


def test_flow_dataset_of_an_original_result_is_its_test_bench(original_dir):
    assert flow_dataset(original_dir("twomoon")) == "twomoon"


def test_a_checkpoint_is_scored_on_fresh_points_of_its_data_set(tmp_path):
    flow = flow2d()
    kn.save(flow, tmp_path / "f.safetensors", {"dataset": "twomoon"})
    saved = open_saved(tmp_path / "f.safetensors")
    assert saved.task is None and saved.path == tmp_path / "f.safetensors"
    metric = study_metric(saved, 50, seed=4)
    held_out = torch.from_numpy(sample_toy("twomoon", 50, seed=5))  # seed + 1, as `kirchhoffnet eval`
    with torch.no_grad():
        expected = float(-saved.model.log_prob(held_out.to(torch.float32)).mean())
    assert metric.name == "nll_nats" and metric(saved.model) == pytest.approx(expected, rel=1e-6)
    assert study_metric(saved, 50, seed=5)(saved.model) != metric(saved.model)  # the seed draws other points


@pytest.mark.parametrize(
    ("model", "metadata", "dataset", "message"),
    [
        (lambda: flow2d(), {}, None, "cannot tell which metric to use for"),
        (lambda: flow2d(3), {"dataset": "twomoon"}, None, "cannot tell which metric to use for"),
        (lambda: kn.Network(small_circuit(), "last1"), {}, "twomoon", "cannot tell which metric to use for"),
        (lambda: flow2d(), {"dataset": "moons"}, None, "--dataset 'moons' is not a 2-D data set; choose one of: "),
        (lambda: flow2d(), {"dataset": "twomoon"}, "wafer", "--dataset 'wafer' is not a 2-D data set"),
    ],
)
def test_a_model_without_a_known_metric_is_one_clear_error(tmp_path, model, metadata, dataset, message):
    kn.save(model(), tmp_path / "m.safetensors", metadata)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        study_metric(open_saved(tmp_path / "m.safetensors"), 10, dataset=dataset)


def test_a_regression_run_is_scored_by_its_test_mse_and_runs_on_its_test_inputs(tmp_path):
    task = run_directory(tmp_path, tiny_regression("train.eval_batch_size=7"))
    saved = open_saved(tmp_path)
    assert saved.task is not None and saved.task.primary == "mse"
    metric = task_metric(saved.task, 9)
    x, y = task.test_data()
    with torch.no_grad():
        out = torch.cat([saved.model(x[:7]), saved.model(x[7:9])])  # in batches of train.eval_batch_size
        expected = float(((out - y[:9].reshape(9, -1)) ** 2).mean())
    assert metric.name == "mse" and metric(saved.model) == pytest.approx(expected, rel=1e-6)
    assert torch.equal(study_inputs(saved, 5), x[:5])  # a regression's default inputs: its test set


def test_a_task_metric_the_studies_cannot_measure_is_named():
    task = SimpleNamespace(
        primary="kl_nats", eval_batch=10, run_config=SimpleNamespace(task="density"),
        test_data=lambda: (torch.zeros(4, 2), None),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="a density run reports kl_nats"):
        task_metric(task, 4)


def test_inputs_come_from_the_file_then_the_run_then_a_flows_base(tmp_path):
    flow = OpenedRun(tmp_path, "checkpoint-file", flow2d())
    np.save(tmp_path / "x.npy", np.arange(12.0).reshape(6, 2))
    assert study_inputs(flow, 4, inputs=tmp_path / "x.npy").tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    z = study_inputs(flow, 5, seed=3)
    assert z.shape == (5, 2) and z.dtype == torch.float64
    assert torch.equal(z, torch.randn(5, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    with pytest.raises(ConfigError, match=r"a Network has no default inputs; pass --inputs FILE\.npy"):
        study_inputs(OpenedRun(tmp_path, "checkpoint-file", kn.Network(small_circuit(), "last1")), 4)
    np.save(tmp_path / "ints.npy", np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ConfigError, match=r"must hold a \(N, d\) float array, got int64 \(3, 2\)"):
        study_inputs(flow, 4, inputs=tmp_path / "ints.npy")


def test_models_are_labelled_by_name_made_unique(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        kn.save(flow2d(), tmp_path / folder / "flow.safetensors", {"dataset": "twomoon"})
    run_directory(tmp_path / "run", tiny_flow("data.test_size=20"))
    paths = [tmp_path / "a" / "flow.safetensors", tmp_path / "b" / "flow.safetensors", tmp_path / "run"]
    found = open_with_metrics([*paths, tmp_path / "run" / ".." / "run"], 10)
    assert [label for label, _, _ in found] == ["flow", "flow-2", "run", "run-2"]
    assert [metric.name for _, _, metric in found] == ["nll_nats"] * 4


def test_hw_report_of_a_run_measures_its_test_inputs(tmp_path):
    run_directory(tmp_path / "run", tiny_regression("train.eval_batch_size=7"))
    study = hw_report(tmp_path / "run", PhysicalDesign(), tmp_path / "out", samples=6, points_per_slice=11)
    assert study.result["num_samples"] == 6 and study.result["source"] == str((tmp_path / "run").resolve())
    assert json.loads((tmp_path / "out" / "hw_report.json").read_text())["num_samples"] == 6
    assert study.summary["latency_s"] == pytest.approx(6e-9)  # (1 + 5) τ, τ = 1 pF / 1 mS
    assert [p.name for p in study.files] == ["hw_report.json", "hw_report.md", "waveforms.png"]

"""Every task trains a tiny model that improves, and writes its metrics and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from kirchhoffnet.config import parse_config
from kirchhoffnet.data.images import IMAGE_SETS
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.models.baselines import MLP
from kirchhoffnet.tasks.base import Task
from kirchhoffnet.training import evaluate_run, open_run, sample_run, train

from ..conftest import MNIST_SUBSET

FASHION = Path(IMAGE_SETS["fashion_mnist"].default_root)
TRAIN = {"epochs": 3, "batch_size": 32, "lr": 2e-2, "schedule": {"name": "none"}}
FAST = {"rtol": 1e-2, "atol": 1e-2, "gradient": "backprop"}


def _first_last(history: dict, key: str = "val_loss") -> tuple[float, float]:
    values = [v for v in history[key] if v is not None]
    return values[0], values[-1]


def _regression(model: dict) -> dict:
    return {
        "task": "regression",
        "threads": 1,
        "data": {"name": "friedman", "n_samples": 300, "n_features": 5},
        "solver": FAST,
        "train": {**TRAIN, "epochs": 4},
        **model,
    }


@pytest.mark.parametrize(
    "model",
    [
        {"circuit": {"topology": {"name": "fully_connect", "num_nodes": 7}, "device": "ShiftTanh2"}},
        {"baseline": {"hidden": [16]}},
    ],
    ids=["kirchhoffnet", "mlp"],
)
def test_regression_learns_friedman(tmp_path, model):
    result = train(parse_config(_regression(model)), tmp_path, progress=False)
    first, last = _first_last(result.metrics["history"])
    assert last < 0.5 * first  # from the untrained model, 4 epochs at least halve the validation MSE
    test = result.metrics["test"]
    assert test["mse"] < 1.0  # better than predicting the mean of the standardised target
    assert (tmp_path / "predicted_vs_true.png").is_file()
    _, _, reloaded = open_run(tmp_path)
    assert isinstance(reloaded, MLP) == ("baseline" in model)
    assert evaluate_run(tmp_path)["mse"] == pytest.approx(test["mse"], rel=1e-6)  # the saved model is the final one
    if "baseline" in model:
        with pytest.raises(ConfigError, match=r"^--set solver: this run's model has no ODE solve to change$"):
            evaluate_run(tmp_path, tmp_path / "eval-rk4", overrides=["solver.method=rk4"])
        assert not (tmp_path / "eval-rk4").exists()


def test_regression_on_the_original_protocol_reports_the_unit_target(tmp_path):
    config = _regression({"baseline": {"hidden": [8]}}) | {"data": {"name": "diabetes", "protocol": "original"}}
    test = train(parse_config(config), tmp_path, progress=False).metrics["test"]
    assert test["target_scale"] == "min-max [0, 1]" and test["num_test"] == 133  # the original's 70/30 split
    assert test["mse"] < 0.25  # a [0, 1] target has variance <= 1/4: it learned something


@pytest.mark.needs_dataset
def test_classification_learns_fashion_mnist(tmp_path):
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION}")
    config = {
        "task": "classify",
        "threads": 1,
        "data": {"name": "fashion_mnist", "downsample": 4, "train_subset": 400, "val_size": 100, "test_subset": 200},
        "circuit": {
            "topology": {
                "name": "mix_connect",
                "channels": 1,
                "height": 7,
                "width": 7,
                "kernel_size": 3,
                "hidden_nodes": 10,
                "repeat": [1, 1],
            },
            "device": "ShiftRelu1",
        },
        "solver": FAST,
        "train": {**TRAIN, "epochs": 2, "batch_size": 50, "lr": 3e-2},
    }
    result = train(parse_config(config), tmp_path, progress=False)
    first, last = _first_last(result.metrics["history"])
    assert last < first
    test = result.metrics["test"]
    assert test["accuracy"] > 0.3  # ten balanced classes: chance is 0.1
    assert test["top5_accuracy"] >= test["accuracy"]
    assert np.array(test["confusion_matrix"]).sum() == 200
    assert (tmp_path / "confusion_matrix.png").is_file()


def test_density_matching_lowers_the_kl(tmp_path):
    config = {
        "task": "density",
        "threads": 1,
        "potential": "U1",
        "val_samples": 256,
        "test_samples": 512,
        "grid": 12,
        "circuit": {"topology": {"name": "fully_connect", "num_nodes": 3, "repeat": [2, 2]}, "slices": 2},
        "solver": {"rtol": 1e-3, "atol": 1e-3, "gradient": "backprop"},
        "train": {"epochs": 3, "batch_size": 128, "lr": 3e-2, "steps_per_epoch": 5},
    }
    result = train(parse_config(config), tmp_path, progress=False)
    first, last = _first_last(result.metrics["history"])
    assert last < first - 0.2  # 15 steps reduce KL(q || p) by a visible margin
    test = result.metrics["test"]
    assert test["kl_nats"] > -3 * test["kl_stderr"]  # a KL divergence is >= 0 up to sampling error
    assert (tmp_path / "density.png").is_file()
    written = sample_run(tmp_path, 300)
    assert np.load(written["samples"]).shape == (300, 2)


def test_mnist_generation_on_the_offline_test_split(tmp_path):
    config = {
        "task": "mnist_gen",
        "threads": 1,
        "data": {
            "name": "mnist",
            "root": str(MNIST_SUBSET),
            "split": "test",
            "digits": [1],
            "downsample": 4,
            "train_subset": 200,
            "val_size": 50,
            "test_subset": 100,
        },
        "circuit": {
            "topology": {
                "name": "mix_connect",
                "channels": 1,
                "height": 7,
                "width": 7,
                "kernel_size": 3,
                "hidden_nodes": 0,
                "repeat": [1, 1],
            },
            "device": "ShiftTanh1",
        },
        "solver": FAST,
        "train": {**TRAIN, "epochs": 6, "batch_size": 50, "lr": 3e-3},  # 2 steps an epoch on the 51 training ones
        "grid": 3,
    }
    result = train(parse_config(config), tmp_path, progress=False)
    first, last = _first_last(result.metrics["history"])
    assert last < first
    test = result.metrics["test"]
    # From ~9.5 bits/dim untrained to under 8 (what uniform pixels would cost) in 12 steps.
    assert test["dim"] == 49 and 0 < test["bits_per_dim"] < 8
    assert (tmp_path / "samples.png").is_file()
    written = sample_run(tmp_path, 30, tmp_path / "drawn")
    samples = np.load(written["samples"])
    assert samples.shape == (30, 49) and samples.min() >= 0 and samples.max() <= 1  # clamped pixel range
    assert (tmp_path / "drawn" / "samples.png").is_file()


def test_sampling_a_non_generative_run_is_refused(tmp_path):
    train(
        parse_config(_regression({"baseline": {"hidden": [4]}}) | {"train": {**TRAIN, "epochs": 1}}),
        tmp_path,
        progress=False,
    )
    with pytest.raises(ConfigError, match=r"task 'regression' is not generative; sampling needs a flow2d"):
        sample_run(tmp_path, 10)


def test_metrics_json_holds_curves_and_final_numbers(tmp_path):
    train(parse_config(_regression({"baseline": {"hidden": [4]}})), tmp_path, progress=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["history"]) >= {"train_loss", "val_loss", "lr", "time_s"}
    assert metrics["test"]["mse"] > 0 and metrics["num_params"] == 5 * 4 + 4 + 4 + 1
    assert metrics["train_wall_time_s"] > 0 and metrics["status"] == "finished"
    assert torch.get_num_threads() >= 1


def _boston_csv(path: Path, rows: int = 80) -> Path:
    rng = np.random.default_rng(0)
    header = "crim,zn,indus,chas,nox,rm,age,dis,rad,tax,ptratio,b,lstat,medv"
    table = rng.uniform(0, 10, (rows, 14))
    table[:, 13] = table[:, :13] @ rng.normal(size=13)  # a learnable target
    path.write_text(header + "\n" + "\n".join(",".join(f"{v:.5f}" for v in row) for row in table) + "\n")
    return path


def test_housing_from_a_csv_file(tmp_path):
    csv = _boston_csv(tmp_path / "boston.csv")
    config = _regression({"baseline": {"hidden": [8]}})
    config["data"] = {"name": "housing", "path": str(csv)}
    result = train(parse_config(config), tmp_path / "run", progress=False)
    assert result.metrics["test"]["num_features"] == 13 and result.metrics["test"]["dataset"] == "housing"


def test_housing_wider_than_the_circuit_is_a_config_error(tmp_path):
    csv = _boston_csv(tmp_path / "boston.csv")
    config = _regression({"circuit": {"topology": {"name": "fully_connect", "num_nodes": 12}}})
    config["data"] = {"name": "housing", "path": str(csv)}
    with pytest.raises(ConfigError, match=r"^circuit\.topology: housing has 13 features but the first slice has 11"):
        train(parse_config(config), tmp_path / "run", progress=False)


class _DataOnlyTask(Task):
    """The least a task must define: enough to exercise what the base class does with data."""

    primary = "loss"

    def build_model(self) -> nn.Module:
        return nn.Identity()

    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        return torch.zeros(())

    def validate(self, model: nn.Module) -> dict[str, float]:
        return {"loss": 0.0}

    def evaluate(self, model: nn.Module, out_dir: Path, progress: bool = False) -> dict[str, Any]:
        return {"loss": 0.0}


@pytest.mark.parametrize("parts", [1, 2])
def test_batches_are_the_same_rows_of_every_training_tensor(parts):
    task = _DataOnlyTask(config=None, device=torch.device("cpu"), dtype=torch.float32)
    assert task.train_size is None and task.batch(None, torch.Generator()) is None  # data-free by default
    x = torch.arange(10.0).reshape(5, 2)
    task.train_data = (x, x[:, 0] * 10)[:parts]
    rows = torch.tensor([4, 1])
    batch = task.batch(rows, torch.Generator())
    assert task.train_size == 5
    if parts == 1:
        assert torch.equal(batch, x[rows])  # a lone tensor comes back as is, not as a 1-tuple
    else:
        assert torch.equal(batch[0], x[rows]) and torch.equal(batch[1], torch.tensor([80.0, 20.0]))


@pytest.mark.parametrize("missing", ["build_model", "loss", "validate", "evaluate"])
def test_a_task_missing_an_abstract_method_cannot_be_constructed(missing):
    incomplete = type("Incomplete", (_DataOnlyTask,), {missing: Task.__dict__[missing]})  # one left abstract
    with pytest.raises(TypeError, match=rf"Can't instantiate abstract class Incomplete .*{missing}"):
        incomplete(config=None, device=torch.device("cpu"), dtype=torch.float32)
    _DataOnlyTask(config=None, device=torch.device("cpu"), dtype=torch.float32)  # the complete double can


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("ring.yaml", "DiffusionTask"),
        ("latent.yaml", "LatentDiffusionTask"),
        ("latent_kirchhoffnet.yaml", "LatentDiffusionTask"),
    ],
)
def test_a_diffusion_config_selects_its_task_variant_through_the_one_registry(config: str, expected: str) -> None:
    from pathlib import Path

    from kirchhoffnet.config import load_config
    from kirchhoffnet.tasks import TASK_TYPES, make_task

    loaded = load_config(Path(__file__).resolve().parents[2] / "configs" / "diffusion" / config)
    assert type(make_task(loaded)).__name__ == expected  # constructing prepares nothing: no VAE is trained
    assert TASK_TYPES["diffusion"].variant(loaded).__name__ == expected

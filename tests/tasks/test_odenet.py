"""The ODE-Net baseline of the classify task: trains through the same pipeline (NFE recorded, checkpoint, resume,
evaluate, open), its checkpoint checked against its header and the config, its config errors one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import kirchhoffnet as kn
from kirchhoffnet.config import check_memory, parse_config
from kirchhoffnet.errors import CheckpointError, ConfigError, SolverError
from kirchhoffnet.models.baselines import ODENet, load_baseline, save_baseline
from kirchhoffnet.runtime import LIMIT_ENV
from kirchhoffnet.solve import solve_field
from kirchhoffnet.training import evaluate_run, open_run, train

from ..conftest import write_idx


def _fashion_files(root: Path) -> Path:
    """A few synthetic Fashion-MNIST images in its real file layout: each class a bright horizontal band at its own
    height, on noise, so that the classes are learnable."""
    rng = np.random.default_rng(0)
    root.mkdir()
    for split, n in (("train", 96), ("t10k", 40)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, (n, 28, 28))
        for k, label in enumerate(labels):
            images[k, 2 + 2 * label : 4 + 2 * label] = 255
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def _config(root: Path, **changes: Any) -> dict[str, Any]:
    config = {
        "task": "classify",
        "threads": 1,
        "data": {"name": "fashion_mnist", "root": str(root), "downsample": 4, "val_size": 16},
        "baseline": {"channels": 4, "downsamplings": 1},
        "solver": {"rtol": 1e-2, "atol": 1e-2, "gradient": "adjoint"},
        "train": {"epochs": 1, "batch_size": 40, "lr": 1e-2, "schedule": {"name": "none"}, "eval_batch_size": 50},
    }
    for key, value in changes.items():
        section, _, leaf = key.partition(".")
        if leaf:
            config[section] = {**config[section], leaf: value}
        else:
            config[section] = value
    return config


def test_an_odenet_trains_resumes_and_reopens(tmp_path):
    root = _fashion_files(tmp_path / "data")
    config = parse_config(_config(root, **{"train.epochs": 2, "train.checkpoint_every_steps": 1}))
    straight = train(config, tmp_path / "straight", progress=False)
    history = straight.metrics["history"]
    assert history["nfe_forward"][-1] > 0 and history["nfe_backward"][-1] > 0  # the adjoint's solve is counted
    assert straight.metrics["num_params"] == ODENet.parameter_count(1, 7, 7, 10, 4, 1, 1.0)

    def interrupt(info: dict) -> None:
        if info["step"] == 3:
            raise KeyboardInterrupt

    run = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(config, run, progress=False, on_step=interrupt)
    resumed = train(config, run, resume=True, progress=False)
    for a, b in zip(resumed.model.parameters(), straight.model.parameters(), strict=True):
        assert torch.equal(a, b)  # bit for bit
    _, _, model = open_run(run)
    assert isinstance(model, ODENet) and model.solver.rtol == 1e-2
    assert evaluate_run(run)["accuracy"] == pytest.approx(resumed.metrics["test"]["accuracy"])
    opened = kn.open(run)
    assert opened.kind == "run" and isinstance(opened.model, ODENet) and opened.metric.name == "accuracy"


def test_a_run_reloaded_under_another_width_is_refused(tmp_path):
    root = _fashion_files(tmp_path / "data")
    train(parse_config(_config(root, **{"train.epochs": 1})), tmp_path / "run", progress=False)
    config = (tmp_path / "run" / "config.yaml").read_text().replace("channels: 4", "channels: 5")
    (tmp_path / "run" / "config.yaml").write_text(config)
    with pytest.raises(CheckpointError, match=r"does not match the run's config.yaml: its ODE-Net has channels 4, the"):
        open_run(tmp_path / "run")


@pytest.mark.parametrize("gradient", [kn.Backprop(), kn.Adjoint()])
def test_the_checkpoint_round_trips_exactly(gradient, tmp_path):
    torch.manual_seed(0)
    model = ODENet(1, 8, 8, 3, channels=6, downsamplings=1, solver=kn.Solver(rtol=1e-3), gradient=gradient)
    path = save_baseline(model, tmp_path / "odenet.safetensors", {"note": "x"})
    again = load_baseline(path, ODENet)
    again.solver = model.solver
    x = torch.rand(5, 64)
    assert torch.equal(model(x), again(x))
    loss = model(x).square().sum()
    loss.backward()
    assert model.stats is not None and model.stats.nfe[0] > 0
    assert (model.stats.nfe_backward[0] > 0) == isinstance(gradient, kn.Adjoint)


def test_the_parameter_count_is_the_built_models():
    for settings in [(1, 28, 28, 10, 136, 2, 1.0), (3, 32, 32, 10, 24, 3, 2.0), (1, 7, 7, 10, 20, 0, 1.0)]:
        assert ODENet.parameter_count(*settings) == sum(p.numel() for p in ODENet(*settings).parameters())


def test_inputs_of_another_size_are_refused():
    with pytest.raises(ConfigError, match=r"^the ODE-Net takes \(batch, 49\) rows of 1x7x7 images, got \(2, 50\)$"):
        ODENet(1, 7, 7, 10, 4, 0)(torch.zeros(2, 50))


class _Explodes(nn.Module):
    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return y * 1e30


def test_a_blowing_up_field_is_a_solver_error():
    with pytest.raises(SolverError, match=r"^the block \(t from 0 to 1\) .*try looser rtol/atol") as caught:
        solve_field(_Explodes(), torch.ones(2, 3), (0.0, 1.0), kn.Solver(max_steps=50), what="the block")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"circuit": {"topology": {"name": "fully_connect", "num_nodes": 50}}}, r"give exactly one of circuit"),
        ({"baseline": None}, r"give exactly one of circuit \(a KirchhoffNet\) or baseline \(an ODE-Net\)"),
        ({"baseline.downsamplings": 3}, r"baseline.downsamplings: 3 stride-2 convolutions need images of at least 8"),
        ({"baseline.channels": 0}, r"baseline.channels"),
        ({"solver.integrator": "fused"}, r"solver: kernel and integrator 'fused' apply to circuits"),
        ({"hardware_aware": {"edge": 0.1}}, r"hardware_aware: an ODE-Net baseline has no devices to vary"),
        ({"data": {"source": "file", "path": "x.npz"}}, r"baseline: the ODE-Net trains on a named image set"),
        ({"baseline.width": 3}, r"baseline.width"),
    ],
)
def test_config_errors(changes, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(_config(tmp_path, **changes))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("channels", [10**5, 10**9, 10**15])
def test_an_oversized_odenet_is_refused_by_the_preflight(channels, tmp_path, monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "8")
    config = parse_config(_config(tmp_path, **{"baseline.channels": channels}))
    with pytest.raises(ConfigError, match=r"^baseline.channels: the run needs at least .*ODE-Net") as refused:
        check_memory(config)
    assert "\n" not in str(refused.value)

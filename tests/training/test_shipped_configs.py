"""Every shipped config trains end to end: the real file, shrunk by overrides to a few steps.

Only sizes, budgets and tolerances are overridden: topology, devices, slices, readout, solver method
and gradient mode are the shipped ones, so a config that cannot build, train, evaluate or plot fails
here. Configs whose data files are not on this machine skip with the loader's message.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kirchhoffnet.config import load_config
from kirchhoffnet.errors import DataError
from kirchhoffnet.training import train

from ..conftest import REPO, SHARED

CONFIGS = REPO / "configs"
TINY_TRAIN = ["train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=16", "train.early_stopping=null"]
LOOSE = ["solver.rtol=1e-2", "solver.atol=1e-2"]  # a few solver steps suffice to exercise the pipeline
TINY_IMAGES = ["data.train_subset=64", "data.val_size=16", "data.test_subset=32", "train.eval_batch_size=32"]
TINY = {
    "flow2d": ["data.train_size=64", "data.val_size=32", "data.test_size=64", "grid=10", *LOOSE],
    "density": ["val_samples=64", "test_samples=128", "grid=10", *LOOSE],
    "regression": ["data.n_samples=120", *LOOSE],
    "classify": [*TINY_IMAGES, *LOOSE],
    "mnist_gen": [*TINY_IMAGES, "grid=2", *LOOSE],
}
# The 28x28 and 32x32 image circuits: fashion_mnist.yaml took 3 CPU minutes even at these sizes.
SLOW = {"classify/fashion_mnist.yaml", "classify/mnist.yaml", "classify/cifar10.yaml", "classify/svhn.yaml"}
DATA_ROOT = {"classify/mnist.yaml": SHARED / "data" / "mnist"}  # offline, only the test split is there


def _shipped() -> list:
    paths = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name != "diffusion")  # own pipeline
    return [
        pytest.param(path, id=name, marks=[pytest.mark.slow] if name in SLOW else [])
        for path in paths
        for name in [path.relative_to(CONFIGS).as_posix()]
    ]


@pytest.mark.parametrize("path", _shipped())
def test_shipped_config_trains_end_to_end(tmp_path, path: Path):
    name = path.relative_to(CONFIGS).as_posix()
    config = load_config(path)
    overrides = [*TINY[config.task], *TINY_TRAIN]
    if config.task == "regression" and config.data.protocol == "original":
        overrides.remove("data.n_samples=120")  # the original protocol fixes the sizes
    if name in DATA_ROOT:
        overrides.append(f"data.root={DATA_ROOT[name]}")
    if config.task == "regression":
        overrides.append("train.batch_size=32")
    try:
        result = train(load_config(path, overrides), tmp_path / "run", progress=False)
    except DataError as exc:
        if "not found" not in str(exc):
            raise
        pytest.skip(str(exc))
    metrics = result.metrics
    assert metrics["status"] == "finished"
    assert metrics["steps"] == 2
    primary = metrics["test"][metrics["primary_metric"]]
    assert math.isfinite(primary)
    for written in ("config.yaml", "checkpoint.pt", "model.safetensors", "metrics.json", "loss.png"):
        assert (tmp_path / "run" / written).is_file(), written
    assert list((tmp_path / "run").glob("*.png")) != [tmp_path / "run" / "loss.png"]  # and the task's plot

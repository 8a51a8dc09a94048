"""Every shipped config trains end to end: the real file, shrunk by overrides to a few steps.

Only sizes, budgets and tolerances are overridden: topology, devices, slices, readout, solver method
and gradient mode are the shipped ones, so a config that cannot build, train, evaluate or plot fails
here. MNIST configs read the shipped test subset (data/mnist-test-subset), CIFAR-10 and SVHN configs random
images in their real file formats, and the housing configs a synthetic file in StatLib's California format;
Fashion-MNIST configs skip with the loader's message where the Debian package is not installed.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from kirchhoffnet.config import load_config
from kirchhoffnet.errors import DataError
from kirchhoffnet.training import train

from ..conftest import MNIST_SUBSET, REPO, write_cifar10, write_svhn

CONFIGS = REPO / "configs"
TINY_TRAIN = ["train.epochs=1", "train.batch_size=16", "train.early_stopping=null"]  # and 1 or 2 steps
ONE_STEP = {"classify/cifar10.yaml", "classify/svhn.yaml"}
"""Their 2-million-edge slices cost about 30 s per adjoint backward here: one step covers the pipeline."""
LOOSE = ["solver.rtol=1e-2", "solver.atol=1e-2"]  # a few solver steps suffice to exercise the pipeline
TINY_IMAGES = ["data.train_subset=64", "data.val_size=16", "data.test_subset=32", "train.eval_batch_size=32"]
TINY = {
    "flow2d": ["data.train_size=64", "data.val_size=32", "data.test_size=64", "grid=10", *LOOSE],
    "density": ["val_samples=64", "test_samples=128", "grid=10", *LOOSE],
    "regression": ["data.n_samples=120", *LOOSE],
    "classify": [*TINY_IMAGES, *LOOSE],
    "mnist_gen": [*TINY_IMAGES, "grid=2", *LOOSE],
}


def _shipped() -> list:
    paths = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name != "diffusion")  # own pipeline
    return [pytest.param(path, id=path.relative_to(CONFIGS).as_posix()) for path in paths]


def _stand_in_data(config, tmp_path: Path) -> list[str]:
    """Overrides that point a config at data shipped in the repository or written here, so that no
    MNIST or housing config skips on a fresh clone."""
    data = getattr(config, "data", None)  # density matching has no data section
    if getattr(data, "name", None) == "mnist":
        if getattr(data, "split", "train") == "test":
            return [f"data.root={MNIST_SUBSET}"]
        root = tmp_path / "mnist"  # the shipped test images stand in for the train split too
        root.mkdir()
        for file in MNIST_SUBSET.glob("t10k-*.gz"):
            shutil.copy(file, root / file.name)
            shutil.copy(file, root / file.name.replace("t10k", "train"))
        return [f"data.root={root}"]
    rng = np.random.default_rng(0)
    if getattr(data, "name", None) == "cifar10":  # the real file format, random pixels
        files = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
        images = rng.integers(0, 256, (40, 3 * 32 * 32))
        return [f"data.root={write_cifar10(tmp_path / 'cifar10', images, list(rng.integers(0, 10, 40)), files)}"]
    if getattr(data, "name", None) == "svhn":
        images, labels = rng.integers(0, 256, (32, 32, 3, 80)), rng.integers(1, 11, 80)
        return [f"data.root={write_svhn(tmp_path / 'svhn', images, labels, ('train_32x32.mat', 'test_32x32.mat'))}"]
    if getattr(data, "name", None) == "housing":
        path = tmp_path / "cal_housing.data"
        _write_statlib_california(path, rows=200)
        return [f"data.path={path}"]
    return []


def _write_statlib_california(path: Path, rows: int) -> None:
    """A head-less file in StatLib's cal_housing.data layout (longitude, latitude, median age, total rooms,
    total bedrooms, population, households, median income, median value) with values in the real ranges
    and a value that rises with income, so the regression has something to learn."""
    rng = np.random.default_rng(0)
    households = rng.integers(100, 1500, rows)
    rooms = households * rng.uniform(3.0, 7.0, rows)
    income = rng.uniform(0.5, 15.0, rows)
    columns = [
        rng.uniform(-124.3, -114.3, rows),
        rng.uniform(32.5, 42.0, rows),
        rng.integers(1, 53, rows),
        rooms.round(),
        (rooms * rng.uniform(0.15, 0.25, rows)).round(),
        (households * rng.uniform(2.0, 4.0, rows)).round(),
        households,
        income,
        np.minimum(15_000 + 33_000 * income + rng.normal(0.0, 20_000, rows), 500_001).round(),
    ]
    path.write_text("\n".join(",".join(f"{v:g}" for v in row) for row in zip(*columns, strict=True)) + "\n")


@pytest.mark.parametrize("path", _shipped())
def test_shipped_config_trains_end_to_end(tmp_path, path: Path):
    config = load_config(path)
    overrides = [*TINY[config.task], *TINY_TRAIN, *_stand_in_data(config, tmp_path)]
    if config.task == "regression" and config.data.protocol == "original":
        overrides.remove("data.n_samples=120")  # the original protocol fixes the sizes
    if config.task == "regression":
        overrides.append("train.batch_size=32")
    steps = 1 if path.relative_to(CONFIGS).as_posix() in ONE_STEP else 2
    overrides.append(f"train.steps_per_epoch={steps}")
    try:
        result = train(load_config(path, overrides), tmp_path / "run", progress=False)
    except DataError as exc:
        if "not found" not in str(exc):
            raise
        pytest.skip(str(exc))
    metrics = result.metrics
    assert metrics["status"] == "finished"
    assert metrics["steps"] == steps
    primary = metrics["test"][metrics["primary_metric"]]
    assert math.isfinite(primary)
    for written in ("config.yaml", "checkpoint.pt", "model.safetensors", "metrics.json", "loss.png"):
        assert (tmp_path / "run" / written).is_file(), written
    assert list((tmp_path / "run").glob("*.png")) != [tmp_path / "run" / "loss.png"]  # and the task's plot

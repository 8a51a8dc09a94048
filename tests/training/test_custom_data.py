"""Training on users' own data: files named by a config (CSV, NPZ, labelled images) and arrays handed
to ``kn.train(config, data=...)``, with the fingerprint that a resume checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app
from kirchhoffnet.config import load_config
from kirchhoffnet.errors import ConfigError, DataError, TrainingError

from .helpers import tiny_flow

runner = CliRunner()
SRC = Path(__file__).resolve().parents[2] / "src"
SMALL = {"rtol": 1e-3, "atol": 1e-3, "gradient": "backprop"}


def regression(data: dict | None, **train) -> dict:
    """A 6-node regression circuit for up to 3 features: one epoch in well under a second."""
    config = {
        "task": "regression",
        "threads": 1,
        "circuit": {"topology": {"name": "fully_connect", "num_nodes": 6, "repeat": [1, 1]}, "times": [0.0, 1.0]},
        "solver": SMALL,
        "train": {"epochs": 1, "batch_size": 16, "lr": 1e-2, **train},
    }
    return config if data is None else {**config, "data": data}


def table(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three features and a linear target with a little noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return x, x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=n)


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    rows = ["f1,f2,f3,target", *(",".join(f"{v:.6f}" for v in (*row, t)) for row, t in zip(x, y, strict=True))]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_csv_regression_from_a_config_whose_path_is_relative_to_it(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    write_csv(folder / "data.csv", *table())
    config = write_yaml(folder / "cfg.yaml", regression({"source": "file", "path": "data.csv", "target": "target"}))
    monkeypatch.chdir(tmp_path)  # the path resolves against the config's folder, not the working directory
    assert load_config(config).data.path == str(folder / "data.csv")
    result = kn.train(config, tmp_path / "run", progress=False)
    test = result.metrics["test"]
    assert test["dataset"] == "file data" and test["num_features"] == 3 and test["num_test"] == 8  # 20 % of 40
    record = json.loads((tmp_path / "run" / "data.json").read_text())
    assert record["source"] == "file" and record["arrays"]["all.x"]["shape"] == [40, 3]
    assert (tmp_path / "run" / "predicted_vs_true.png").is_file()


def test_npz_regression_through_the_command_line(tmp_path):
    x, y = table()
    np.savez(tmp_path / "data.npz", X=x, y=y)
    config = write_yaml(tmp_path / "cfg.yaml", regression({"source": "file", "path": "data.npz"}))
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "kirchhoffnet", "train", str(config), "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path.parent, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["num_test"] == 8 and metrics["epochs_completed"] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("f1,target\n1,2\n2,nan\n", "row 3, column 'target': nan is not finite"),
        ("f1,target\n1,2\n", "has no column 'price' (data.target)"),
        ("", "holds no header"),
        (b"f1,target\n1,\xfe\n", "is not UTF-8 text"),
    ],
)
def test_hostile_csv_on_the_command_line_is_one_line_and_exit_1(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    target = "price" if "price" in message else "target"
    config = write_yaml(tmp_path / "cfg.yaml", regression({"source": "file", "path": "bad.csv", "target": target}))
    result = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "bad.csv" in line and message in line and "\n" not in line


def test_a_file_too_wide_for_the_circuit_is_a_config_error_exit_2(tmp_path):
    np.savez(tmp_path / "wide.npz", X=np.zeros((30, 9)), y=np.zeros(30))
    config = write_yaml(tmp_path / "cfg.yaml", regression({"source": "file", "path": "wide.npz"}))
    result = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "file data has 9 features but the first slice has 5 state nodes" in result.output


def classifier(data: dict | None) -> dict:
    """Three classes of 4x4 one-channel images on a 20-node circuit, logits on the last 3 nodes."""
    config = {
        "task": "classify",
        "threads": 1,
        "circuit": {"topology": {"name": "fully_connect", "num_nodes": 21, "repeat": [1, 1]}, "times": [0.0, 1.0]},
        "readout": "last3",
        "solver": SMALL,
        "train": {"epochs": 1, "batch_size": 16, "lr": 1e-2},
    }
    return config if data is None else {**config, "data": data}


def images(n: int = 48, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 4, 4) whose brightness tells the class."""
    labels = np.arange(n) % classes
    noise = np.random.default_rng(0).integers(0, 40, size=(n, 4, 4))
    return (labels[:, None, None] * 100 + noise).astype(np.uint8), labels


def test_classification_from_an_array_file(tmp_path):
    x, y = images()
    np.savez(tmp_path / "images.npz", x=x, y=y)
    data = {"source": "file", "path": str(tmp_path / "images.npz")}
    result = kn.train(classifier(data), tmp_path / "run", progress=False)
    test = result.metrics["test"]
    assert test["num_test"] == 10 and np.array(test["confusion_matrix"]).shape == (3, 3)  # 20 % of 48
    assert np.array(test["confusion_matrix"]).sum() == 10 and (tmp_path / "run" / "confusion_matrix.png").is_file()


def test_classification_files_are_checked_against_the_readout_and_circuit(tmp_path):
    x, y = images()
    np.savez(tmp_path / "labels.npz", x=x, y=y + 1)  # labels 1..3 for a readout of 3 logits
    with pytest.raises(DataError, match=r"labels.npz: \w+ label 3 \(sample \d+\) is outside 0..2"):
        kn.train(classifier({"source": "file", "path": str(tmp_path / "labels.npz")}), tmp_path / "a", progress=False)
    np.savez(tmp_path / "big.npz", x=np.zeros((48, 3, 8, 8), dtype=np.uint8), y=y)
    with pytest.raises(ConfigError, match=r"big\.npz images have 192 pixels but the first slice has only 20"):
        kn.train(classifier({"source": "file", "path": str(tmp_path / "big.npz")}), tmp_path / "b", progress=False)


class SimulatedKillError(Exception):
    """Stands for a process killed mid-run."""


def test_train_with_arrays_then_resume_with_the_same_or_other_data(tmp_path):
    x, y = table()
    data = (torch.from_numpy(x).float(), torch.from_numpy(y).float())
    straight = kn.train(regression(None, epochs=2), tmp_path / "straight", progress=False, data=data)

    def interrupt(info: dict) -> None:
        if info["step"] == 3:  # the first step of epoch 2; the checkpoint of epoch 1 is on disk
            raise SimulatedKillError

    with pytest.raises(SimulatedKillError):
        kn.train(regression(None, epochs=2), tmp_path / "run", progress=False, data=data, on_step=interrupt)
    record = json.loads((tmp_path / "run" / "data.json").read_text())
    assert record["source"] == "memory" and record["arrays"]["all.x"]["shape"] == [40, 3]
    other = (data[0] + 1.0, data[1])
    with pytest.raises(TrainingError, match=r"cannot resume .*run with different data: all.x was float64 \(40, 3\)"):
        kn.train(regression(None, epochs=2), tmp_path / "run", resume=True, progress=False, data=other)
    result = runner.invoke(app, ["train", str(tmp_path / "run"), "--resume", "--no-progress"])
    assert result.exit_code == 2 and "data.source is memory" in result.output and "kn.train(" in result.output
    same = (x.astype(np.float32), y.astype(np.float32))  # the same numbers as NumPy arrays
    resumed = kn.train(regression(None, epochs=2), tmp_path / "run", resume=True, progress=False, data=same)
    assert resumed.metrics["epochs_completed"] == 2 and len(resumed.metrics["sessions"]) == 2
    assert resumed.metrics["history"]["train_loss"] == straight.metrics["history"]["train_loss"]  # continued exactly
    assert resumed.metrics["test"]["mse"] == straight.metrics["test"]["mse"]


def test_train_with_given_splits_and_clear_refusals(tmp_path):
    x, y = table(60)
    splits = {"train": (x[:40], y[:40]), "val": (x[40:50], y[40:50]), "test": (x[50:], y[50:])}
    result = kn.train(regression({"source": "memory"}), tmp_path / "run", progress=False, data=splits)
    assert result.metrics["test"]["num_test"] == 10
    with pytest.raises(ConfigError, match=r"data\.source memory; this regression config's data source is named"):
        named = regression({"name": "friedman", "n_samples": 40, "n_features": 5})
        kn.train(named, tmp_path / "b", progress=False, data=(x, y))
    with pytest.raises(ConfigError, match=r"data\.source memory; this flow2d config's data source is its own"):
        kn.train(tiny_flow(), tmp_path / "e", progress=False, data=(x, y))
    with pytest.raises(ConfigError, match=r"data\.source is memory"):
        kn.train(regression({"source": "memory"}), tmp_path / "c", progress=False)
    with pytest.raises(DataError, match=r"data\['val'\]: the features hold a non-finite value"):
        bad = {**splits, "val": (np.full((10, 3), np.nan), y[40:50])}
        kn.train(regression(None), tmp_path / "d", progress=False, data=bad)
    assert not any((tmp_path / name).exists() for name in "bce")  # refused before the run directory
    assert not (tmp_path / "d" / "config.yaml").exists()  # nothing written before the data loaded ...
    retry = kn.train(regression(None), tmp_path / "d", progress=False, data=splits)  # ... so a retry runs
    assert retry.metrics["status"] == "finished"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "file"}, "data.path: data.source file reads data.path"),
        ({"source": "file", "path": "d.csv"}, "data.target: name the CSV's target column"),
        ({"source": "file", "path": "d.txt"}, "data.path: a regression file is .csv or .npz"),
        ({"source": "file", "path": "d.npz", "n_samples": 50}, "data.n_samples: does not apply to data.source file"),
        ({"name": "friedman", "target": "y"}, "data.target: does not apply to data.source named"),
        ({"source": "memory", "name": "friedman"}, "data.name: a memory source has no name"),
        ({"source": "memory", "path": "d.csv"}, "data.path: data.source memory takes its data from kn.train"),
        ({"source": "named"}, "data.name: required for a named data set"),
    ],
)
def test_data_sections_that_cannot_work_are_config_errors(data, message):
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
        kn.config.parse_config(regression(data))


def test_classify_sections_need_a_class_count_and_their_own_settings():
    with pytest.raises(ConfigError, match="readout: give the number of classes"):
        kn.config.parse_config({**classifier({"source": "memory"}), "readout": None})
    with pytest.raises(ConfigError, match=r"data\.val_size: does not apply to data\.source file"):
        kn.config.parse_config(classifier({"source": "file", "path": "i.npz", "val_size": 3}))


def test_in_memory_images_and_splits_that_do_not_fit_are_one_line(tmp_path):
    x, y = images()
    splits = {"train": (x[:30], y[:30]), "val": (x[30:40], y[30:40]), "test": (x[40:], y[40:])}
    result = kn.train(classifier(None), tmp_path / "run", progress=False, data=splits)
    assert result.metrics["test"]["num_test"] == 8 and result.metrics["test"]["dataset"] == "memory data"
    wide = {**splits, "test": (np.zeros((8, 4, 6), dtype=np.uint8), y[40:])}
    with pytest.raises(DataError, match=r"data: the splits hold images of different shapes"):
        kn.train(classifier(None), tmp_path / "a", progress=False, data=wide)
    with pytest.raises(ConfigError, match=r"data\.downsample: 3 does not divide the 4x4 images of data"):
        kn.train(classifier({"source": "memory", "downsample": 3}), tmp_path / "b", progress=False, data=splits)
    table_x, table_y = table(30)
    uneven = {"train": (table_x, table_y), "val": (table_x[:5, :2], table_y[:5]), "test": (table_x, table_y)}
    with pytest.raises(DataError, match=r"data: the splits have different numbers of features \[2, 3\]"):
        kn.train(regression(None), tmp_path / "c", progress=False, data=uneven)


def test_datasets_that_cannot_be_stacked_are_one_line():
    from torch.utils.data import Dataset, IterableDataset

    from kirchhoffnet.data.supplied import as_parts

    class Items(Dataset):
        def __init__(self, items: list) -> None:
            self.items = items

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, k: int):  # type: ignore[no-untyped-def]
            return self.items[k]

    class Stream(IterableDataset):
        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter([])

    with pytest.raises(DataError, match="item 1 of the Dataset is not an"):
        as_parts(Items([(np.zeros(2), 1), np.zeros(3)]))
    with pytest.raises(DataError, match="the Dataset's items differ in shape"):
        as_parts(Items([(np.zeros(2), 1), (np.zeros(3), 0)]))
    with pytest.raises(DataError, match="the Dataset has no len"):
        as_parts(Stream())
    assert as_parts(Items([(np.zeros(2), 1), (np.ones(2), 0)]))["all"][1].tolist() == [1, 0]


def test_classification_from_a_folder_of_class_folders_beside_the_config(tmp_path):
    from PIL import Image

    x, y = images(30)
    for k, (pixels, label) in enumerate(zip(x, y, strict=True)):
        folder = tmp_path / "pictures" / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{k}.png")
    config = write_yaml(tmp_path / "cfg.yaml", classifier({"source": "file", "path": "pictures"}))
    result = kn.train(config, tmp_path / "run", progress=False)
    assert result.metrics["test"]["num_test"] == 6  # 20 % of 30
    assert json.loads((tmp_path / "run" / "data.json").read_text())["arrays"]["all.x"]["shape"] == [30, 1, 4, 4]

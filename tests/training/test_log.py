"""What a run logs as it trains: metrics.csv (consistent across a resume), the on_epoch callback, the
sessions that trained it, and TensorBoard events with the extra."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

import kirchhoffnet as kn
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.training import train
from kirchhoffnet.training._log import CSV_FIELDS, METRICS_CSV, RunLog, git_commit, session

from .helpers import tiny_flow


class SimulatedKillError(Exception):
    pass


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / METRICS_CSV).open() as file:
        return list(csv.DictReader(file))


def _without_time(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "time_s"} for row in rows]


def test_metrics_csv_has_a_row_per_epoch_and_on_epoch_gets_the_history_row(tmp_path):
    seen: list[dict] = []
    result = kn.train(tiny_flow(), tmp_path / "run", progress=False, on_epoch=seen.append)
    rows = _rows(tmp_path / "run")
    history = result.metrics["history"]
    assert [int(r["epoch"]) for r in rows] == history["epoch"] == [0, 1, 2, 3, 4]
    assert list(rows[0]) == list(CSV_FIELDS)  # a flow's validation reports its loss only
    for row, loss, val in zip(rows, history["train_loss"], history["val_loss"], strict=True):
        assert row["train_loss"] == ("" if loss is None else repr(loss)) and float(row["val_loss"]) == val
    assert [r["epoch"] for r in seen] == [1, 2, 3, 4]  # trained epochs; epoch 0 is the untrained model
    assert set(seen[-1]) == {*CSV_FIELDS, "validation"} and seen[-1]["validation"]["loss"] == history["val_loss"][-1]
    assert seen[-1]["grad_norm"] > 0 and seen[-1]["nfe_forward"] > 0


def test_validation_metrics_get_their_own_columns(tmp_path):
    log = RunLog(tmp_path, [{"epoch": 0, "val_loss": 1.0, "validation": {"loss": 1.0, "accuracy": 0.5}}], False)
    log.write({"epoch": 1, "train_loss": 0.9, "lr": 0.1, "validation": None, "skipped": 0})
    log.write({"epoch": 2, "validation": {"loss": 0.7, "accuracy": 0.75, "confusion": [[1]]}})
    rows = _rows(tmp_path)
    assert list(rows[0]) == [*CSV_FIELDS, "val_accuracy"]
    assert [r["val_accuracy"] for r in rows] == ["0.5", "", "0.75"] and rows[1]["train_loss"] == "0.9"


def test_a_resumed_run_logs_each_epoch_once(tmp_path):
    """Killed after logging epoch 3 but with its checkpoint at epoch 2: the resumed run's metrics.csv equals an
    uninterrupted run's (but for the times), without the killed process's row 3 twice."""
    config = tiny_flow("train.checkpoint_every=2")
    train(config, tmp_path / "straight", progress=False)

    def interrupt(info: dict) -> None:
        if info["step"] == 14:  # in epoch 4 (4 steps an epoch): epoch 3 logged, the checkpoint holds epoch 2
            raise SimulatedKillError

    with pytest.raises(SimulatedKillError):
        train(config, tmp_path / "resumed", progress=False, on_step=interrupt)
    assert [r["epoch"] for r in _rows(tmp_path / "resumed")] == ["0", "1", "2", "3"]
    result = train(config, tmp_path / "resumed", resume=True, progress=False)
    assert _without_time(_rows(tmp_path / "resumed")) == _without_time(_rows(tmp_path / "straight"))
    sessions = result.metrics["sessions"]
    assert len(sessions) == 2 and sessions[0]["started_at"] <= sessions[1]["started_at"]


def test_every_run_records_versions_commit_command_and_start(tmp_path):
    result = train(tiny_flow("train.epochs=1"), tmp_path / "run", progress=False)
    (record,) = json.loads((tmp_path / "run" / "metrics.json").read_text())["sessions"]
    assert record == result.metrics["sessions"][0]
    assert set(record["versions"]) == {"kirchhoffnet", "python", "torch", "numpy", "torchdiffeq", "torchsde"}
    assert record["versions"]["kirchhoffnet"] == kn.__version__ and record["command"] and record["started_at"]
    source = Path(kn.__file__).parent
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "__init__.py"], cwd=source, capture_output=True)
    assert (record["git_commit"] is not None) == (tracked.returncode == 0)


def test_outside_a_git_checkout_the_commit_is_none(tmp_path):
    assert git_commit(tmp_path) == {"git_commit": None, "git_dirty": None}
    assert session()["versions"]["python"].count(".") == 2


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="the tensorboard extra is not installed")
def test_tensorboard_events_with_the_extra(tmp_path):
    train(tiny_flow("train.epochs=2"), tmp_path / "run", progress=False)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="the tensorboard extra is installed")
def test_without_the_extra_tensorboard_is_skipped_or_refused(tmp_path):
    train(tiny_flow("train.epochs=1"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "tensorboard").exists()
    with pytest.raises(ConfigError, match=r"kirchhoffnet\[tensorboard\]"):
        train(tiny_flow("train.epochs=1"), tmp_path / "other", progress=False, tensorboard=True)

"""The epoch record: averages over the finite steps, sums that restart each epoch, JSON without NaN."""

from __future__ import annotations

import json
import math

import pytest
import torch

from kirchhoffnet.training._distributed import Cluster
from kirchhoffnet.training._history import HISTORY, History, json_safe

ALONE = Cluster(0, 1, torch.device("cpu"))


def test_an_epoch_row_averages_the_finite_steps_and_counts_the_skipped():
    history = History()
    history.add_step(1.0, 0.5, False, (10, 20))
    history.add_step(math.nan, math.nan, True, (99, 99))  # skipped: counted, never averaged
    history.add_step(3.0, 1.5, False, (30, 40))
    row = history.close_epoch(1, 0.01, 2.5, ALONE)
    assert row == {
        "epoch": 1, "train_loss": 2.0, "val_loss": None, "lr": 0.01, "nfe_forward": 20.0,
        "nfe_backward": 30.0, "grad_norm": 1.0, "skipped": 1, "time_s": 2.5,
    }  # fmt: skip
    assert set(history.partial.values()) == {0.0}  # the next epoch sums from zero
    assert history.close_epoch(2, 0.01, 3.0, ALONE)["train_loss"] is None  # no finite step: no average


def test_rows_fill_every_column_and_the_last_validation_is_found_behind_unvalidated_epochs():
    history = History()
    assert history.last() == dict.fromkeys(HISTORY) and history.last_val_loss() is None
    history.append({"epoch": 0, "val_loss": 4.0})
    history.append({"epoch": 1, "train_loss": 3.0})  # an epoch without validation
    assert history.columns["epoch"] == [0, 1] and history.columns["val_loss"] == [4.0, None]
    assert history.columns["lr"] == [None, None]  # a column a row does not name gets None
    assert history.last()["train_loss"] == 3.0 and history.last_val_loss() == 4.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_json_safe_turns_non_finite_floats_into_null_at_any_depth(bad):
    value = {"a": bad, "b": [1.0, (bad, 2)], "c": {"d": bad, "e": "x"}}
    assert json.loads(json.dumps(json_safe(value), allow_nan=False)) == {
        "a": None, "b": [1.0, [None, 2]], "c": {"d": None, "e": "x"},
    }  # fmt: skip

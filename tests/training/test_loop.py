"""The training loop: it learns, schedules step, clipping bounds gradients, resume is exact,
NaN losses are skipped or stop the run, run directories are guarded."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from kirchhoffnet.checkpoint import RUN_MODEL
from kirchhoffnet.errors import TrainingError
from kirchhoffnet.tasks.flow2d import Flow2dTask
from kirchhoffnet.training import CHECKPOINT, train
from kirchhoffnet.training._objective import Objective
from kirchhoffnet.training._state import load_checkpoint

from .helpers import tiny_flow


class SimulatedKillError(Exception):
    """Stands in for a kill: raised from the step callback, like a signal arriving mid-run."""


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_tiny_flow_trains_and_writes_the_run_directory(tmp_path):
    result = train(tiny_flow(), tmp_path / "run", progress=False)
    history = result.metrics["history"]
    # 16 steps at lr 2e-2 take the NLL from ~3.6 nats (untrained) to ~2.3; a wide margin for noise.
    assert history["val_loss"][-1] < history["val_loss"][0] - 0.5
    assert result.metrics["status"] == "finished" and result.metrics["steps"] == 16
    assert result.metrics["test"]["nll_nats"] == pytest.approx(history["val_loss"][-1], abs=0.3)
    for name in ("config.yaml", CHECKPOINT, RUN_MODEL, "metrics.json", "loss.png", "samples.png"):
        assert (tmp_path / "run" / name).is_file(), name
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["num_params"] == 2 * 3 * 12 and written["nfe_forward_per_step"] > 0
    assert written["train_wall_time_s"] > 0 and written["history"]["epoch"] == [0, 1, 2, 3, 4]
    assert written["history"]["train_loss"][0] is None  # epoch 0 is the untrained model's validation


@pytest.mark.parametrize(
    ("schedule", "expected_last_lr"),
    [
        ({"name": "cosine", "eta_min": 1e-4}, 1e-4),  # annealed all the way down after the last step
        ({"name": "step", "step_epochs": 1, "gamma": 0.5}, 2e-2 * 0.5**4),  # halved after each of 4 epochs
        ({"name": "none"}, 2e-2),
    ],
)
def test_learning_rate_schedules_step(tmp_path, schedule, expected_last_lr):
    config = tiny_flow(**{"train": {"epochs": 4, "batch_size": 64, "lr": 2e-2, "schedule": schedule}})
    lrs = train(config, tmp_path, progress=False).metrics["history"]["lr"]
    assert lrs[-1] == pytest.approx(expected_last_lr, rel=1e-9)
    if schedule["name"] != "none":
        assert all(b < a for a, b in itertools.pairwise(lrs))  # it moved every epoch


def test_gradient_clipping_bounds_the_gradient_norm(tmp_path):
    norms = []
    config = tiny_flow("train.grad_clip=0.05", "train.epochs=1")

    def record(_: dict) -> None:
        grads = [p.grad for p in result_model[0].parameters() if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))))

    result_model: list = []
    original = Objective.__init__

    def keep(self, task, model, rails=None):  # capture the model being trained
        original(self, task, model, rails)
        result_model.append(model)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Objective, "__init__", keep)
        result = train(config, tmp_path, progress=False, on_step=record)
    assert len(norms) == 4
    assert max(norms) <= 0.05 * (1 + 1e-5)  # clip_grad_norm_ rescales to the bound (float32 rounding)
    assert min(result.metrics["history"]["grad_norm"][1:]) > 0.05  # the raw norms were larger: clipping acted


def test_resume_after_an_interruption_is_exact(tmp_path):
    config = tiny_flow("train.checkpoint_every_steps=3")
    reference = train(config, tmp_path / "straight", progress=False)

    def interrupt(info: dict) -> None:
        if info["step"] == 10:  # mid-epoch 3; the last checkpoint was written at step 9
            raise SimulatedKillError

    with pytest.raises(SimulatedKillError):
        train(config, tmp_path / "resumed", progress=False, on_step=interrupt)
    state = load_checkpoint(tmp_path / "resumed" / CHECKPOINT)
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (2, 1, 9)
    torch.manual_seed(99)  # the resumed run restores the RNG streams itself
    resumed = train(config, tmp_path / "resumed", resume=True, progress=False)
    assert torch.equal(_params(resumed.model), _params(reference.model))  # bit for bit
    for key in ("train_loss", "val_loss", "lr", "nfe_forward"):
        assert resumed.metrics["history"][key] == reference.metrics["history"][key], key


def test_a_finished_run_is_not_overwritten(tmp_path):
    train(tiny_flow("train.epochs=1"), tmp_path, progress=False)
    with pytest.raises(TrainingError, match=r"already holds a run \(checkpoint.pt\); pass --resume"):
        train(tiny_flow("train.epochs=1"), tmp_path, progress=False)


def test_resume_refuses_a_changed_config(tmp_path):
    train(tiny_flow("train.epochs=1"), tmp_path, progress=False)
    with pytest.raises(TrainingError, match=r"different config: train.lr changed"):
        train(tiny_flow("train.epochs=1", "train.lr=0.5"), tmp_path, resume=True, progress=False)


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(TrainingError, match=r"nothing to resume in .* no checkpoint.pt"):
        train(tiny_flow(), tmp_path, resume=True, progress=False)


def test_a_run_directory_in_use_is_refused(tmp_path):
    def collide(info: dict) -> None:
        if info["step"] == 1:
            train(tiny_flow(), tmp_path, progress=False)

    with pytest.raises(TrainingError, match=r"in use by another process \(pid \d+\)"):
        train(tiny_flow(), tmp_path, progress=False, on_step=collide)
    train(tiny_flow("train.epochs=1"), tmp_path / "next", progress=False)  # the lock was released


def _nan_at(steps: set[int]):
    """Patch the flow task's loss to be NaN (still connected to the parameters) on given steps."""
    original = Flow2dTask.loss
    calls = {"n": 0}

    def loss(self, model, batch, generator):
        value = original(self, model, batch, generator)
        calls["n"] += 1
        return value * math.nan if calls["n"] in steps else value

    return loss


def test_nan_losses_are_skipped(tmp_path, monkeypatch):
    before: list = []
    monkeypatch.setattr(Flow2dTask, "loss", _nan_at({3, 4}))
    result = train(tiny_flow(), tmp_path, progress=False, on_step=lambda info: before.append(info["loss"]))
    assert math.isnan(before[2]) and math.isnan(before[3])
    assert result.metrics["skipped_steps"] == 2 and result.metrics["status"] == "finished"
    assert result.metrics["history"]["skipped"][1] == 2  # both in epoch 1
    assert all(math.isfinite(x) for x in result.metrics["history"]["train_loss"][1:])  # NaN steps are not averaged
    assert bool(torch.isfinite(_params(result.model)).all())


def test_nan_loss_stops_the_run_when_configured(tmp_path, monkeypatch):
    monkeypatch.setattr(Flow2dTask, "loss", _nan_at({6}))
    with pytest.raises(TrainingError, match=r"non-finite loss or gradient at step 5 \(epoch 2\).*on_nan is stop"):
        train(tiny_flow("train.on_nan=stop"), tmp_path, progress=False)
    state = load_checkpoint(tmp_path / CHECKPOINT)  # epoch 1's checkpoint, finite
    assert state["epoch"] == 1 and all(bool(torch.isfinite(t).all()) for t in state["model"].values())
    assert json.loads((tmp_path / "metrics.json").read_text())["status"].startswith("stopped: non-finite")


def test_too_many_consecutive_nan_steps_stop(tmp_path, monkeypatch):
    monkeypatch.setattr(Flow2dTask, "loss", _nan_at({2, 3, 4}))
    with pytest.raises(TrainingError, match=r"3 consecutive steps had non-finite losses"):
        train(tiny_flow("train.max_nan_skips=2"), tmp_path, progress=False)


def test_early_stopping_restores_the_best_parameters(tmp_path, monkeypatch):
    losses = iter([3.0, 2.0, 1.0, 1.5, 1.6, 1.7, 1.8])  # untrained, then best at epoch 2, then two bad ones
    monkeypatch.setattr(Flow2dTask, "validate", lambda self, model: {"loss": next(losses)})
    snapshots: dict[int, torch.Tensor] = {}
    holder: list = []
    original = Objective.__init__

    def keep(self, task, model, rails=None):
        original(self, task, model, rails)
        holder.append(model)

    def snapshot(info: dict) -> None:
        if info["step"] % 4 == 0:  # the end of an epoch (4 steps each)
            snapshots[info["step"] // 4] = _params(holder[0]).clone()

    monkeypatch.setattr(Objective, "__init__", keep)
    config = tiny_flow(**{"train": {"epochs": 6, "batch_size": 64, "lr": 2e-2, "early_stopping": {"patience": 2}}})
    result = train(config, tmp_path, progress=False, on_step=snapshot)
    assert result.metrics["status"] == "stopped early" and result.metrics["epochs_completed"] == 4
    assert result.metrics["best_epoch"] == 2
    assert torch.equal(_params(result.model), snapshots[2])

"""Diffusion as a task of the shared trainer: the score-matching loss, the parameter average, and a
run killed with SIGKILL mid-training that resumes to the bit-identical model of an uninterrupted run."""

from __future__ import annotations

import signal

import pytest
import torch
from safetensors.torch import load_file

from kirchhoffnet.checkpoint import RUN_MODEL
from kirchhoffnet.config import parse_config, write_config
from kirchhoffnet.diffusion._threads import single_thread
from kirchhoffnet.diffusion.loss import drop_labels, dsm_loss
from kirchhoffnet.diffusion.run import load_run
from kirchhoffnet.diffusion.score import ScoreModel, ScoreNet
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import CheckpointError
from kirchhoffnet.training import train
from kirchhoffnet.training._average import WeightAverage
from kirchhoffnet.training._state import load_checkpoint

from ..reliability.crash import start


def _model(num_classes: int = 0) -> ScoreModel:
    net = ScoreNet(width=8, num_classes=num_classes, parametrization="noise", noise_floor=0.05)
    return ScoreModel(net, VPSDE(0.01, 8.0))


def _tiny(model: dict, **extra) -> dict:
    train = {"epochs": 3, "steps_per_epoch": 4, "batch_size": 64, "lr": 3e-3, "grad_clip": 1.0, "ema_decay": 0.9}
    return {
        "task": "diffusion",
        "data": "ring",
        "seed": 2,
        "threads": 1,
        "model": model,
        "train": {**train, "checkpoint_every_steps": 2},
        "sample": {"steps": 10},
        "evaluate": {"num_samples": 200},
        "score_matching": {"val_size": 256},
        **extra,
    }


def test_several_noise_draws_average_the_loss_over_chips():
    model = _model()
    x0 = torch.randn(4096, 2)

    @torch.no_grad()
    def spread(draws: int) -> float:
        losses = [
            float(dsm_loss(model, x0, None, torch.Generator().manual_seed(seed), 0.5, 1.0, noise_draws=draws))
            for seed in range(16)
        ]
        return float(torch.tensor(losses).std())

    # strong weight noise: the loss varies mostly from chip to chip, so 8 independent chips per batch
    # should cut its spread by ~√8 ≈ 2.8 (the data's own share of the spread stays); ask for 1.6
    with single_thread():
        assert spread(8) * 1.6 < spread(1)


def test_label_dropout_drops_about_its_share_to_the_null_label():
    labels = torch.zeros(20_000, dtype=torch.long)
    dropped = drop_labels(labels, 0.1, torch.Generator().manual_seed(0))
    assert dropped is not None and set(dropped.tolist()) == {-1, 0}
    assert abs(float((dropped == -1).float().mean()) - 0.1) < 0.01
    assert drop_labels(None, 0.1, torch.Generator()) is None and drop_labels(labels, 0.0, torch.Generator()) is labels


def test_the_parameter_average_follows_its_recursion_and_is_applied_only_inside_its_block():
    model = torch.nn.Linear(3, 2)
    start = [p.detach().clone() for p in model.parameters()]
    average = WeightAverage(model, decay=0.75)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update()
    own = [p.detach().clone() for p in model.parameters()]
    with average.applied():
        for p, s in zip(model.parameters(), start, strict=True):
            torch.testing.assert_close(p, s + 0.25)  # 0.75 · start + 0.25 · (start + 1)
    for p, o in zip(model.parameters(), own, strict=True):
        assert torch.equal(p, o)
    with pytest.raises(CheckpointError, match=r"the parameter average holds \['bias'\]"):
        average.load({"bias": torch.zeros(2)}, "ckpt")
    with pytest.raises(CheckpointError, match=r"the parameter average's weight does not fit"):
        average.load({"weight": torch.zeros(3, 3), "bias": torch.zeros(2)}, "ckpt")


@pytest.mark.parametrize(
    "model",
    [
        {"kind": "crossbar", "width": 8},
        {"kind": "kirchhoffnet", "hidden": 4, "time_nodes": 2, "repeat": 1, "settle_steps": 2},
    ],
    ids=["crossbar", "kirchhoffnet"],
)
def test_a_run_killed_mid_training_resumes_to_the_bit_identical_model(model, tmp_path):
    config = parse_config(_tiny(model, score_matching={"val_size": 256, "time_power": 1.5}))
    reference = train(config, tmp_path / "reference", progress=False)
    assert reference.metrics["steps"] == 12 and reference.metrics["status"] == "finished"
    path = write_config(config, tmp_path / "tiny.yaml")
    run_dir = tmp_path / "run"
    # fsync 1 is config.yaml, 2 the new metrics.csv, then each checkpoint is checkpoint.pt + metrics.json:
    # fsync 7 is the third checkpoint.pt (after step 6 of 12), torn before the process dies
    process = start(path, run_dir, "--kill-at-fsync", "7")
    stderr = process.communicate(timeout=600)[1].decode()
    assert process.returncode == -signal.SIGKILL, stderr
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["step"] == 4 and state["average"] is not None and not (run_dir / RUN_MODEL).exists()
    resumed = train(config, run_dir, resume=True, progress=False)
    got, want = load_file(run_dir / RUN_MODEL), load_file(reference.run_dir / RUN_MODEL)
    assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert resumed.metrics["test"]["kl_pooled"] == reference.metrics["test"]["kl_pooled"]
    assert resumed.metrics["history"]["val_loss"] == reference.metrics["history"]["val_loss"]


def test_the_saved_model_is_the_parameter_average(tmp_path):
    config = parse_config(_tiny({"kind": "crossbar", "width": 8}))
    result = train(config, tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    saved = load_run(tmp_path / "run").model.state_dict()
    for name, value in state["average"].items():
        assert torch.equal(saved[name], value)
        assert not torch.equal(state["model"][name], value)  # the last step's parameters are not what is saved
    assert result.metrics["primary_metric"] == "kl_pooled"

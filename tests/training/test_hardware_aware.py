"""Hardware-aware training from a config: every step runs on the die of (seed, rank, step), resume
replays the same dies, and the trained model comes back without any injected die."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize

from kirchhoffnet.checkpoint import load
from kirchhoffnet.config import parse_config
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware import Variation
from kirchhoffnet.hardware.variation import draw_die, trial_seed
from kirchhoffnet.tasks.flow2d import Flow2dTask
from kirchhoffnet.training import train

from .helpers import tiny_flow

MISMATCH = {"edge": 0.1, "die": 0.05, "capacitance": 0.05}


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_each_step_trains_on_the_die_of_its_seed_and_step(tmp_path, monkeypatch):
    config = tiny_flow("train.epochs=1", hardware_aware=MISMATCH)
    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    loss = Flow2dTask.loss

    def spy(self, model, batch, generator):
        piece = model.circuit.slices[0]
        raw = piece.parametrizations.params.original  # the trained parameters behind the die
        seen.append((piece.params.detach().clone(), raw.detach().clone(), piece.capacitance.clone()))
        return loss(self, model, batch, generator)

    monkeypatch.setattr(Flow2dTask, "loss", spy)
    result = train(config, tmp_path, progress=False)
    assert len(seen) == 4  # 256 points in batches of 64
    for step, (die_params, raw, capacitance) in enumerate(seen):
        # The die of step s: drawn from trial_seed(trial_seed(seed, rank 0), s), whatever ran before.
        generator = torch.Generator().manual_seed(trial_seed(trial_seed(config.seed, 0), step))
        die = draw_die(result.model, Variation(**MISMATCH), generator)
        expected = raw * die.params[0].to(raw.dtype)
        torch.testing.assert_close(die_params, expected, rtol=0, atol=0)  # the same product, bit for bit
        torch.testing.assert_close(capacitance, die.capacitance.to(capacitance.dtype), rtol=1e-6, atol=0)  # C₀ = 1
    piece = result.model.circuit.slices[0]
    assert not parametrize.is_parametrized(piece)  # the saved model is the trained one, not a die
    assert torch.equal(piece.capacitance, torch.ones_like(piece.capacitance))
    saved = load(tmp_path / "model.safetensors")
    assert torch.equal(_params(saved), _params(result.model))


def test_hardware_aware_training_differs_from_plain_and_zero_injection_does_not(tmp_path):
    plain = train(tiny_flow("train.epochs=1"), tmp_path / "plain", progress=False)
    aware = train(tiny_flow("train.epochs=1", hardware_aware=MISMATCH), tmp_path / "aware", progress=False)
    nothing = train(tiny_flow("train.epochs=1", hardware_aware={}), tmp_path / "zero", progress=False)
    assert not torch.equal(_params(aware.model), _params(plain.model))
    assert torch.equal(_params(nothing.model), _params(plain.model))  # σ = 0, no bits: the plain run exactly
    assert aware.metrics["history"]["train_loss"][1] != plain.metrics["history"]["train_loss"][1]


def test_resume_replays_the_same_dies(tmp_path):
    config = tiny_flow("train.checkpoint_every_steps=3", hardware_aware={**MISMATCH, "bits": 6})
    reference = train(config, tmp_path / "straight", progress=False)

    def interrupt(info: dict) -> None:
        if info["step"] == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", progress=False, on_step=interrupt)
    resumed = train(config, tmp_path / "resumed", resume=True, progress=False)
    assert torch.equal(_params(resumed.model), _params(reference.model))  # bit for bit


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("hardware_aware.edg=0.05", r"^hardware_aware\.edg: unknown key; valid keys here: edge, die, capacitance"),
        ("hardware_aware.edge=2", r"^hardware_aware\.edge: must be <= 1.0, got 2"),
        ("hardware_aware.scheme=log", r"^hardware_aware\.scheme: .*'uniform' or 'lut'"),
    ],
)
def test_hardware_aware_section_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        tiny_flow(override)


def test_an_mlp_baseline_cannot_be_trained_hardware_aware():
    config = {
        "task": "regression",
        "data": {"name": "friedman"},
        "baseline": {"hidden": [8]},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-2},
        "hardware_aware": {"edge": 0.05},
    }
    with pytest.raises(ConfigError, match=r"hardware_aware: an MLP baseline has no devices to vary; remove the"):
        parse_config(config)

"""The RRAM authors' saturation penalty: hidden amplifier outputs beyond the rails cost, inside they do not,
and training with it keeps a network's signals nearer the rails."""

from __future__ import annotations

import pytest
import torch

from kirchhoffnet.config import parse_config
from kirchhoffnet.data.points import sample_ring
from kirchhoffnet.diffusion import VPSDE, Saturation, ScoreModel, ScoreNet, dsm_loss
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.tasks import make_task

RAILS = Saturation(level_v=0.1, weight=1.0, volts_per_unit=0.1)  # an activation of 1 is the 0.1 V rail


def test_the_penalty_is_zero_inside_the_rails_and_the_squared_excess_outside():
    inside = [torch.tensor([[0.0, 0.5, -1.0], [1.0, 0.99, -0.2]])]  # |v| ≤ 0.1 V
    assert float(RAILS.penalty(inside)) == 0.0
    outside = [torch.tensor([[3.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, -2.0], [0.0, 0.0]])]
    # row 0: (0.3 − 0.1)² + (0.2 − 0.1)² volts² = 0.05; row 1: 0; the mean over the batch is 0.025
    assert float(RAILS.penalty(outside)) == pytest.approx(0.025)
    assert float(Saturation(0.1, 4.0, 0.1).penalty(outside)) == pytest.approx(0.1)


def _model() -> ScoreModel:
    return ScoreModel(ScoreNet(generator=torch.Generator().manual_seed(0)), VPSDE())


def _excess(model: ScoreModel) -> float:
    """The penalty (weight 1) of the hidden outputs over a fixed batch of noisy points and times."""
    generator = torch.Generator().manual_seed(99)
    x, s = torch.randn(1024, 2, generator=generator), torch.rand(1024, generator=generator)
    with torch.no_grad():
        return float(RAILS.penalty(model.net.activations(x, s)[1]))


def _trained(saturation: Saturation | None, steps: int = 150) -> ScoreModel:
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    for step in range(steps):
        loss = dsm_loss(model, sample_ring(128, seed=step), None, generator, saturation=saturation)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def test_training_with_the_penalty_lowers_the_excursions_beyond_the_rails():
    plain, penalised = _trained(None), _trained(Saturation(level_v=0.1, weight=10.0, volts_per_unit=0.1))
    assert _excess(plain) > 0  # the plain network does go beyond the rails, so the comparison means something
    assert _excess(penalised) < 0.5 * _excess(plain)  # measured 0.0058 against 0.0228


def test_the_penalty_adds_to_the_loss_and_is_absent_inside_wide_rails():
    model, x0 = _model(), sample_ring(64, seed=3)

    @torch.no_grad()
    def loss(saturation: Saturation | None) -> float:
        return float(dsm_loss(model, x0, None, torch.Generator().manual_seed(5), saturation=saturation))

    plain = loss(None)
    assert loss(Saturation(level_v=100.0, weight=1.0, volts_per_unit=0.1)) == pytest.approx(plain, rel=1e-6)
    assert loss(Saturation(level_v=0.01, weight=1.0, volts_per_unit=0.1)) > plain


def _config(**settings) -> dict:
    train = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "lr": 1e-3}
    return {"task": "diffusion", "data": "ring", "train": train, **settings}


def test_the_config_sets_the_penalty_in_volts_and_refuses_it_without_a_crossbar():
    config = parse_config(_config(score_matching={"saturation": {"level_v": 0.3}}, analog={"voltage_per_unit_v": 0.2}))
    task = make_task(config)
    task.prepare()
    batch = task.batch(None, torch.Generator().manual_seed(0))
    model = task.build_model()
    with torch.no_grad():
        with_rails = float(task.loss(model, batch, torch.Generator().manual_seed(2)))
        rails = Saturation(0.3, 1.0, 0.2)
        expected = dsm_loss(model, batch[0], None, torch.Generator().manual_seed(2), saturation=rails)
        plain = dsm_loss(model, batch[0], None, torch.Generator().manual_seed(2))
    assert float(expected) > float(plain)  # the fresh network goes beyond 0.3 V at 0.2 V per unit
    assert with_rails == pytest.approx(float(expected), rel=1e-6)
    assert parse_config(_config()).score_matching.saturation is None
    with pytest.raises(ConfigError, match=r"score_matching\.saturation: it penalises the crossbar"):
        parse_config(_config(model={"kind": "kirchhoffnet"}, score_matching={"saturation": {"level_v": 0.3}}))
    with pytest.raises(ConfigError, match="level_v"):
        parse_config(_config(score_matching={"saturation": {"level_v": 0}}))

import pytest
import torch

from kirchhoffnet.diffusion.score import ScoreModel, ScoreNet
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.diffusion.threads import single_thread
from kirchhoffnet.diffusion.train import TrainSettings, dsm_loss, train_score
from kirchhoffnet.errors import ConfigError


def _model(num_classes: int = 0) -> ScoreModel:
    net = ScoreNet(width=8, num_classes=num_classes, parametrization="noise", noise_floor=0.05)
    return ScoreModel(net, VPSDE(0.01, 8.0))


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


def test_noise_draws_must_divide_the_batch():
    settings = TrainSettings(steps=1, batch_size=10, noise_std=0.1, noise_draws=4)
    with pytest.raises(
        ConfigError, match=r"train.noise_aware.draws \(4\) must be positive and divide train.batch_size"
    ):
        train_score(_model(), lambda n, g: (torch.randn(n, 2, generator=g), None), settings, progress=False)


def test_conditional_training_with_several_draws_runs():
    settings = TrainSettings(steps=3, batch_size=12, noise_std=0.1, noise_draws=3)

    def batches(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, 2, generator=g), torch.randint(0, 2, (n,), generator=g)

    losses = train_score(_model(num_classes=2), batches, settings, progress=False)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))

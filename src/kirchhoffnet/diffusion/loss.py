"""Denoising score matching (Vincent 2011; Song et al. 2021) with the paper's noise-aware option: the loss
the diffusion task's trainer minimises.

For s ~ U(s_min, 1), z ~ N(0, I) and x_s = m(s) x_0 + σ(s) z the loss is ‖σ(s) s_θ(x_s, s) + z‖², whose
minimiser is the score of the perturbed data. Noise-aware training evaluates the network with freshly
perturbed weights w (1 + n) at every step, so it learns weights whose function survives programming
noise; classifier-free guidance training drops each label with probability ``label_dropout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

import torch
from torch import Tensor

from kirchhoffnet.diffusion.field import ScoreField
from kirchhoffnet.diffusion.score import Linear, ScoreNet, weight_noise_layers
from kirchhoffnet.errors import ConfigError


class CrossbarScore(Protocol):
    """A score function on crossbar layers whose weights can be perturbed (noise-aware training)."""

    net: ScoreNet

    def score(
        self,
        x: Tensor,
        s: Tensor,
        labels: Tensor | None = None,
        linear: Sequence[Linear] | None = None,
    ) -> Tensor: ...


def drop_labels(labels: Tensor | None, dropout: float, generator: torch.Generator) -> Tensor | None:
    """Each label replaced by the null label −1 with probability ``dropout`` (classifier-free guidance)."""
    if labels is None or dropout <= 0:
        return labels
    drop = torch.rand(len(labels), generator=generator) < dropout
    return torch.where(drop, torch.full_like(labels, -1), labels)


def dsm_loss(
    model: ScoreField,
    x0: Tensor,
    labels: Tensor | None,
    generator: torch.Generator,
    noise_std: float = 0.0,
    noise_limit: float = 0.2,
    time_power: float = 1.0,
    noise_draws: int = 1,
) -> Tensor:
    """Mean denoising score-matching loss of one batch (σ²-weighted, so every s counts alike).

    With ``noise_std`` > 0 the batch is split into ``noise_draws`` equal shares, each evaluated with its
    own draw of the weight noise.

    Shapes:
        x0: (B, dim) with B divisible by noise_draws; labels: (B,) long or None.
    """
    sde = model.sde
    s = sde.s_min + (1 - sde.s_min) * torch.rand(len(x0), generator=generator, dtype=x0.dtype) ** time_power
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    mean, std = sde.marginal(s)
    x_s = mean.unsqueeze(1) * x0 + std.unsqueeze(1) * z
    if noise_std <= 0:
        score = model.score(x_s, s, labels)
    else:
        if "analog" not in model.integrators:  # the weights an RRAM chip programs, and only that chip
            raise ConfigError(
                f"noise-aware training perturbs crossbar weights; the {model.backend} score model has none (remove "
                "score_matching.noise_aware)"
            )
        crossbar = cast(CrossbarScore, model)
        shares = zip(x_s.chunk(noise_draws), s.chunk(noise_draws), _chunks(labels, noise_draws), strict=True)
        score = torch.cat(
            [
                crossbar.score(x, t, y, linear=weight_noise_layers(crossbar.net, noise_std, noise_limit, generator))
                for x, t, y in shares
            ]
        )
    return (score * std.unsqueeze(1) + z).square().sum(dim=1).mean()


def _chunks(labels: Tensor | None, count: int) -> list[Tensor | None]:
    return [None] * count if labels is None else list(labels.chunk(count))

"""Denoising score matching (Vincent 2011; Song et al. 2021) with the paper's noise-aware option: the loss
the diffusion task's trainer minimises.

For s ~ U(s_min, 1), z ~ N(0, I) and x_s = m(s) x_0 + σ(s) z the loss is ‖σ(s) s_θ(x_s, s) + z‖², whose
minimiser is the score of the perturbed data. Noise-aware training evaluates the network with freshly
perturbed weights w (1 + n) at every step, so it learns weights whose function survives programming
noise; classifier-free guidance training drops each label with probability ``label_dropout``. The RRAM
paper's authors also penalise hidden activations beyond the amplifiers' saturation level, so a trained
network keeps its signals inside the rails where the analog loop would clip them (`Saturation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import torch
from torch import Tensor

from kirchhoffnet.diffusion.field import ScoreField
from kirchhoffnet.diffusion.score import Linear, ScoreNet, weight_noise_layers
from kirchhoffnet.errors import ConfigError


class CrossbarScore(Protocol):
    """A score function on crossbar layers whose weights can be perturbed (noise-aware training)."""

    net: ScoreNet

    def score_of(self, output: Tensor, x: Tensor, s: Tensor) -> Tensor: ...

    def score(
        self,
        x: Tensor,
        s: Tensor,
        labels: Tensor | None = None,
        linear: Sequence[Linear] | None = None,
    ) -> Tensor: ...


@dataclass(frozen=True)
class Saturation:
    """A penalty ``weight`` × Σ (|v| − ``level_v``)² over the hidden amplifier outputs v (volts: an activation
    of 1 is ``volts_per_unit``) that lie beyond ±``level_v``, averaged over the batch; 0 inside the rails."""

    level_v: float
    weight: float
    volts_per_unit: float

    def penalty(self, hidden: Sequence[Tensor]) -> Tensor:
        """Shapes: hidden: (B, width) activations in state units, any number of layers. Returns a scalar."""
        excess = [torch.relu(h.abs() * self.volts_per_unit - self.level_v).square().sum(dim=1) for h in hidden]
        return self.weight * torch.stack(excess).sum(dim=0).mean()


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
    saturation: Saturation | None = None,
) -> Tensor:
    """Mean denoising score-matching loss of one batch (σ²-weighted, so every s counts alike), plus the
    ``saturation`` penalty of the hidden activations it computed (crossbar score network only).

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
    if noise_std <= 0 and saturation is None:
        score = model.score(x_s, s, labels)
        return (score * std.unsqueeze(1) + z).square().sum(dim=1).mean()
    if "analog" not in model.integrators:  # the weights an RRAM chip programs, and only that chip
        option = "noise_aware" if noise_std > 0 else "saturation"
        raise ConfigError(
            f"score_matching.{option} acts on the crossbar network; the {model.backend} score model has none "
            f"(remove score_matching.{option})"
        )
    crossbar = cast(CrossbarScore, model)
    shares = zip(x_s.chunk(noise_draws), s.chunk(noise_draws), _chunks(labels, noise_draws), strict=True)
    scores, hidden = [], []
    for x, t, y in shares:
        noisy = weight_noise_layers(crossbar.net, noise_std, noise_limit, generator) if noise_std > 0 else None
        output, share_hidden = crossbar.net.activations(x, t, y, noisy)
        scores.append(crossbar.score_of(output, x, t))
        hidden.append(share_hidden)
    score = torch.cat(scores)
    loss = (score * std.unsqueeze(1) + z).square().sum(dim=1).mean()
    if saturation is None:
        return loss
    return loss + saturation.penalty([torch.cat(layer) for layer in zip(*hidden, strict=True)])


def _chunks(labels: Tensor | None, count: int) -> list[Tensor | None]:
    return [None] * count if labels is None else list(labels.chunk(count))

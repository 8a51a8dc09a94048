"""Denoising score matching (Vincent 2011; Song et al. 2021) with the paper's noise-aware option.

For s ~ U(s_min, 1), z ~ N(0, I) and x_s = m(s) x_0 + σ(s) z the loss is ‖σ(s) s_θ(x_s, s) + z‖², whose
minimiser is the score of the perturbed data. Noise-aware training evaluates the network with freshly
perturbed weights w (1 + n) at every step, so it learns weights whose function survives programming
noise; classifier-free guidance training drops each label with probability ``label_dropout``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from kirchhoffnet.diffusion.score import ScoreModel, weight_noise_layers
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.diffusion.threads import single_thread
from kirchhoffnet.errors import ConfigError, SolverError
from kirchhoffnet.progress import bar

Batches = Callable[[int, torch.Generator], tuple[Tensor, Tensor | None]]
"""``(batch_size, generator) → (x_0 (B, dim), labels (B,) or None)``."""


class ScoreFunction(Protocol):
    """What denoising score matching trains: any module with an SDE and a score ∇log p_s(x) (the crossbar
    :class:`ScoreModel`, the KirchhoffNet :class:`~kirchhoffnet.diffusion.score_circuit.model.CircuitScoreModel`)."""

    sde: VPSDE

    def score(self, x: Tensor, s: Tensor, labels: Tensor | None = None) -> Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings.

    Attributes:
        steps: Adam steps.
        batch_size: data points per step.
        lr: initial learning rate, decayed by a cosine to ``lr * lr_final_ratio``.
        lr_final_ratio: final over initial learning rate.
        weight_decay: Adam L2 penalty (keeps weights inside the programmable conductance range).
        ema_decay: exponential moving average of the weights, which is what gets saved.
        grad_clip: largest gradient norm per step.
        noise_std: standard deviation of the multiplicative weight noise (0 = plain training).
        noise_limit: the weight noise is clipped to ±noise_limit.
        noise_draws: independent weight-noise draws ("chips") per step, each applied to its own equal share
            of the batch: the step's gradient then averages over several chips instead of following one.
        label_dropout: probability of training a sample as unconditional (label −1).
        time_power: s = s_min + (1 − s_min) u^p with u ~ U(0, 1): p > 1 spends more of the tiny network's
            capacity on small s, where the fine structure of the data is formed (p = 1: uniform).
    """

    steps: int = 20_000
    batch_size: int = 1024
    lr: float = 3e-3
    lr_final_ratio: float = 0.01
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    noise_std: float = 0.0
    noise_limit: float = 0.2
    noise_draws: int = 1
    label_dropout: float = 0.1
    time_power: float = 1.0


def dsm_loss(
    model: ScoreFunction,
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
        if not isinstance(model, ScoreModel):
            raise ConfigError(
                "noise-aware training perturbs crossbar weights and applies to the crossbar score network only; "
                "remove train.noise_aware"
            )
        shares = zip(x_s.chunk(noise_draws), s.chunk(noise_draws), _chunks(labels, noise_draws), strict=True)
        score = torch.cat(
            [
                model.score(x, t, y, linear=weight_noise_layers(model.net, noise_std, noise_limit, generator))
                for x, t, y in shares
            ]
        )
    return (score * std.unsqueeze(1) + z).square().sum(dim=1).mean()


def _chunks(labels: Tensor | None, count: int) -> list[Tensor | None]:
    return [None] * count if labels is None else list(labels.chunk(count))


def train_score(
    model: ScoreFunction,
    batches: Batches,
    settings: TrainSettings,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` in place; at the end its weights are the EMA weights. Returns the loss per step.

    Raises:
        SolverError: the loss became NaN or infinite (learning rate too high).
    """
    if settings.steps < 1 or settings.batch_size < 1:
        raise ConfigError(f"train steps and batch_size must be positive, got {settings.steps}, {settings.batch_size}")
    if settings.noise_draws < 1 or settings.batch_size % settings.noise_draws:
        raise ConfigError(
            f"train.noise_aware.draws ({settings.noise_draws}) must be positive and divide train.batch_size "
            f"({settings.batch_size}); pick a divisor such as 1, 2, 4 or 8"
        )
    with single_thread():
        return _train(model, batches, settings, seed, progress)


def _train(model: ScoreFunction, batches: Batches, settings: TrainSettings, seed: int, progress: bool) -> list[float]:
    generator = torch.Generator().manual_seed(seed)
    params: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay, foreach=True)
    ema = [p.detach().clone() for p in params]
    losses: list[float] = []
    steps = bar(range(settings.steps), desc="training", unit="step", enabled=progress)
    for step in steps:
        progress_ratio = step / max(settings.steps - 1, 1)
        scale = settings.lr_final_ratio + (1 - settings.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * progress_ratio))
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * scale
        x0, labels = batches(settings.batch_size, generator)
        if labels is not None and settings.label_dropout > 0:
            drop = torch.rand(len(labels), generator=generator) < settings.label_dropout
            labels = torch.where(drop, torch.full_like(labels, -1), labels)
        loss = dsm_loss(
            model,
            x0,
            labels,
            generator,
            settings.noise_std,
            settings.noise_limit,
            settings.time_power,
            settings.noise_draws,
        )
        if not torch.isfinite(loss):
            raise SolverError(
                f"training loss became {float(loss)} at step {step}; lower train.lr (now {settings.lr}) or grad_clip"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.grad_clip, foreach=True)
        optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1 - settings.ema_decay)
        losses.append(loss.item())
        if step % 200 == 0:
            steps.set_postfix(loss=f"{sum(losses[-200:]) / len(losses[-200:]):.4f}")
    with torch.no_grad():
        torch._foreach_copy_(params, ema)
    return losses

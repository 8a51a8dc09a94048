"""A few Adam steps of denoising score matching on any score model and batch source (unit tests of
score models; runs are trained by the shared trainer)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from kirchhoffnet.diffusion.field import ScoreField
from kirchhoffnet.diffusion.loss import drop_labels, dsm_loss


def fit(
    model: ScoreField,
    batches: Callable[[int, torch.Generator], tuple[Tensor, Tensor | None]],
    steps: int,
    lr: float = 1e-2,
    label_dropout: float = 0.0,
    batch_size: int = 128,
) -> None:
    generator = torch.Generator().manual_seed(0)
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        x0, labels = batches(batch_size, generator)
        loss = dsm_loss(model, x0, drop_labels(labels, label_dropout, generator), generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

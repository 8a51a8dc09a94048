"""What the trainer minimises and how its learning rate moves: the task's loss as a module (so DDP
can wrap it) and the learning-rate schedule, stepped once per optimiser step."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet.config import TrainConfig
from kirchhoffnet.errors import SolverError
from kirchhoffnet.tasks import Task


class Objective(nn.Module):
    """The task's loss as a module, so that DDP can wrap it (DDP syncs gradients of ``forward``)."""

    def __init__(self, task: Task, model: nn.Module) -> None:
        super().__init__()
        self.task = task
        self.model = model

    def forward(self, batch: Any, generator: torch.Generator) -> Tensor:
        try:
            return self.task.loss(self.model, batch, generator)
        except SolverError:  # a blown-up solve is a non-finite loss; train.on_nan decides
            return sum(p.sum() for p in self.model.parameters()) * math.nan  # type: ignore[return-value]


def make_scheduler(
    optimizer: torch.optim.Optimizer, train: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The LR schedule, stepped once per optimiser step."""
    schedule = train.schedule
    if schedule.name == "cosine":
        total_steps = train.epochs * steps_per_epoch
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=schedule.eta_min)
    if schedule.name == "step":
        every = schedule.step_epochs * steps_per_epoch
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=schedule.gamma)
    return None

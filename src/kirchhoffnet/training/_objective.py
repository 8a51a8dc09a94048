"""What the trainer minimises and how its learning rate moves: the task's loss as a module (so DDP
can wrap it) and the learning-rate schedule, stepped once per optimiser step."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet.config import TrainConfig
from kirchhoffnet.config.tasks import RailsConfig
from kirchhoffnet.errors import ConfigError, SolverError
from kirchhoffnet.solve import recording_slice_ends
from kirchhoffnet.tasks import Task


class Objective(nn.Module):
    """The task's loss as a module, so that DDP can wrap it (DDP syncs gradients of ``forward``), plus
    the rails penalty where ``train.rails`` asks for one."""

    def __init__(self, task: Task, model: nn.Module, rails: RailsConfig | None = None) -> None:
        super().__init__()
        self.task = task
        self.model = model
        self.rails = rails

    def forward(self, batch: Any, generator: torch.Generator) -> Tensor:
        try:
            with recording_slice_ends(2 if self.rails is None else self.rails.points) as ends:
                loss = self.task.loss(self.model, batch, generator)
        except SolverError:  # a blown-up solve is a non-finite loss; train.on_nan decides
            return sum(p.sum() for p in self.model.parameters()) * math.nan  # type: ignore[return-value]
        if self.rails is None:
            return loss
        if not ends:
            raise ConfigError(
                f"train.rails: the {type(self.model).__name__} model solved no circuit, so it has no node voltages "
                "to keep within rails; drop train.rails"
            )
        return loss + self.rails.weight * rail_excursion(ends, self.rails.low, self.rails.high)


def rail_excursion(slice_voltages: list[Tensor], low: float, high: float) -> Tensor:
    """Squared excursion beyond the rails, summed over nodes, averaged over each slice's P recorded times
    and doubled (so that the ends alone, P = 2, give their sum: the weight means the same for any P), and
    averaged over the batch: zero exactly when every reported voltage is within ``[low, high]``."""
    total = sum(
        ((low - v).clamp(min=0) ** 2 + (v - high).clamp(min=0) ** 2).sum((0, 1)) * (2 / v.shape[0])
        for v in slice_voltages
    )
    return total.mean()  # type: ignore[union-attr]


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

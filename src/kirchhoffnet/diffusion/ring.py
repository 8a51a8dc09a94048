"""The unconditional task's data: a thin 2-D ring (radius ~ N(0.7, 0.04²), angle uniform)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kirchhoffnet.errors import ConfigError


def sample_ring(n: int, seed: int = 0, radius: float = 0.7, thickness: float = 0.04) -> Tensor:
    """``n`` ring points, (n, 2) float32, reproducible by ``seed``."""
    if int(n) < 1:
        raise ConfigError(f"number of ring samples must be positive, got {n}")
    generator = torch.Generator().manual_seed(seed)
    r = torch.randn(int(n), generator=generator) * thickness + radius
    angle = torch.rand(int(n), generator=generator) * (2 * math.pi)
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1)

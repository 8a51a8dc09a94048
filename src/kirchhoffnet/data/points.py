"""The unconditional tasks' data: the RRAM paper's thin 2-D ring (radius ~ N(0.7, 0.04²), angle uniform),
or one of the 2-D flow data sets, so score models and flows are compared on the same points."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kirchhoffnet.data.toy2d import TOY_SETS, sample_toy
from kirchhoffnet.errors import ConfigError

POINT_SETS = ("ring", *TOY_SETS)
"""The unconditional tasks' 2-D distributions (``task:`` in a diffusion config)."""


def sample_ring(n: int, seed: int = 0, radius: float = 0.7, thickness: float = 0.04) -> Tensor:
    """``n`` ring points, (n, 2) float32, reproducible by ``seed``."""
    if int(n) < 1:
        raise ConfigError(f"number of ring samples must be positive, got {n}")
    generator = torch.Generator().manual_seed(seed)
    r = torch.randn(int(n), generator=generator) * thickness + radius
    angle = torch.rand(int(n), generator=generator) * (2 * math.pi)
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1)


def sample_points(name: str, n: int, seed: int = 0) -> Tensor:
    """``n`` points (n, 2) float32 of the named distribution ([`POINT_SETS`][kirchhoffnet.data.points.POINT_SETS]),
    reproducible by ``seed``."""
    if name == "ring":
        return sample_ring(n, seed)
    return torch.from_numpy(sample_toy(name, n, seed)).float()

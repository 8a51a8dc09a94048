"""Wiener increments drawn once per step, for fixed-step Euler–Maruyama through torchsde."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchsde import BaseBrownian

from kirchhoffnet.errors import SolverError


class SteppedBrownian(BaseBrownian):
    """Wiener increments for Euler–Maruyama on a fixed grid: one fresh normal draw per step.

    ``W(tb) − W(ta) = sqrt(tb − ta)·N(0, I)`` from a seeded generator. torchsde's
    ``BrownianInterval`` answers any query consistently, at the price of several draws and a
    tree search per step; a fixed-step Euler scheme asks for each step interval exactly once and
    in order, for which independent draws are exact: a whole flow-slice solve runs 2.5× faster
    (``benchmarks/noise_sde.py``). Any other query pattern is refused.

    Shapes:
        Increments are (B, E): one Wiener process per sample and edge.
    """

    def __init__(self, size: tuple[int, int], dtype: torch.dtype, seed: int) -> None:
        self._shape = size
        self._dtype = dtype
        self._next: float | None = None  # where the next interval must start; the first may start anywhere
        self._generator = torch.Generator().manual_seed(seed)

    def __call__(self, ta: Any, tb: Any = None, return_U: bool = False, return_A: bool = False) -> Tensor:
        follows = self._next is None or float(ta) == self._next
        if tb is None or return_U or return_A or not follows:
            raise SolverError(
                f"stepped Brownian increments answer consecutive step intervals only; got ({ta}, {tb}) "
                f"when the next step starts at {self._next}"
            )
        self._next = float(tb)
        scale = math.sqrt(max(float(tb) - float(ta), 0.0))
        return scale * torch.randn(self._shape, generator=self._generator, dtype=self._dtype)

    def __repr__(self) -> str:
        return f"SteppedBrownian(shape={self._shape}, next={self._next})"

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def levy_area_approximation(self) -> str:
        return "none"

"""The variance-preserving diffusion SDE (Song et al. 2021, "Score-based generative modeling through SDEs").

Forward process on diffusion time s ∈ [0, 1]:  dx = −½ β(s) x ds + √β(s) dw,  β(s) = β_min + s (β_max − β_min).
Its marginals are Gaussian around the data: x_s = m(s) x_0 + σ(s) z with m = exp(−½ B), σ² = 1 − exp(−B),
B(s) = ∫₀ˢ β. Sampling runs the reverse-time SDE (or the probability-flow ODE) from s = 1 down to s_min.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from kirchhoffnet.errors import ConfigError


@dataclass(frozen=True)
class VPSDE:
    """β schedule and time span of a VP-SDE.

    Attributes:
        beta_min: β at s = 0.
        beta_max: β at s = 1.
        s_min: smallest diffusion time used in training and where sampling stops (avoids σ → 0).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    s_min: float = 1e-3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.beta_min) and self.beta_min > 0):
            raise ConfigError(f"VPSDE beta_min must be a positive number, got {self.beta_min}")
        if not (math.isfinite(self.beta_max) and self.beta_max >= self.beta_min):
            raise ConfigError(f"VPSDE beta_max must be >= beta_min = {self.beta_min}, got {self.beta_max}")
        if not 0 < self.s_min < 1:
            raise ConfigError(f"VPSDE s_min must lie in (0, 1), got {self.s_min}")

    def beta(self, s: Tensor) -> Tensor:
        return self.beta_min + s * (self.beta_max - self.beta_min)

    def integrated_beta(self, s: Tensor) -> Tensor:
        """B(s) = ∫₀ˢ β(u) du."""
        return self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s * s

    def marginal(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """Mean factor m(s) and standard deviation σ(s) of x_s given x_0; same shape as ``s``."""
        big_b = self.integrated_beta(s)
        return torch.exp(-0.5 * big_b), torch.sqrt(-torch.expm1(-big_b))

    def scaled(self, factor: float) -> VPSDE:
        """The same schedule with β multiplied by ``factor`` (the original samples with β ×2 or ×1.5)."""
        return VPSDE(self.beta_min * factor, self.beta_max * factor, self.s_min)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

"""Rectifying devices: ideal diodes with a threshold, and their leaky variants."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from kirchhoffnet.devices.base import AffineActivation, GatedDrop, TerminalGains
from kirchhoffnet.errors import DeviceError


class _Relu(AffineActivation):
    fused_activation = "relu"

    def spice_activation(self, u: str) -> str:
        return f"max({u},0)"

    def activation(self, u: Tensor, inplace: bool) -> Tensor:
        return u.relu_() if inplace else torch.relu(u)

    def slope(self, out: Tensor) -> Tensor:
        # out > 0 exactly where u > 0; the slope at u = 0 is 0, as torch's autograd defines it.
        return (out > 0).to(out.dtype)

    def curvature(self, out: Tensor, slope: Tensor) -> Tensor:
        return torch.zeros_like(out)  # piecewise linear: σ'' = 0 almost everywhere


class _Leaky(AffineActivation):
    """Leaky rectifier σ(u) = u for u > 0, ``negative_slope``·u otherwise."""

    fused_activation = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        if not 0.0 <= float(negative_slope) < 1.0:
            raise DeviceError(f"negative_slope must lie in [0, 1), got {negative_slope}")
        self.negative_slope = float(negative_slope)

    def hyperparameters(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    def spice_activation(self, u: str) -> str:
        return f"(max({u},0)+{self.negative_slope!r}*min({u},0))"

    def activation(self, u: Tensor, inplace: bool) -> Tensor:
        return F.leaky_relu(u, self.negative_slope, inplace=inplace)

    def slope(self, out: Tensor) -> Tensor:
        s = self.negative_slope  # out > 0 exactly where u > 0, since s >= 0
        return s + (1.0 - s) * (out > 0).to(out.dtype)

    def curvature(self, out: Tensor, slope: Tensor) -> Tensor:
        return torch.zeros_like(out)  # piecewise linear: σ'' = 0 almost everywhere


class ShiftRelu1(GatedDrop, _Relu):
    """``i = p1·relu(v_src − v_dst − p0)``: conducts once the drop exceeds the threshold p0."""


class ShiftRelu2(TerminalGains, _Relu):
    """``i = relu(p0·v_src + p1·v_dst + p2)``."""


class ShiftLeakyRelu1(GatedDrop, _Leaky):
    """``i = p1·leaky_relu(v_src − v_dst − p0)``."""


class ShiftLeakyRelu2(TerminalGains, _Leaky):
    """``i = leaky_relu(p0·v_src + p1·v_dst + p2)``."""

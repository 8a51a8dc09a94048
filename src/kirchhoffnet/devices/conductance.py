"""The linear resistor: a plain conductance, for linear circuits and closed-form tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from kirchhoffnet.devices.base import AffineActivation, Coefficients, Params


class Conductance(AffineActivation):
    """``i = p0·(v_src − v_dst)``: Ohm's law with a learnable conductance p0."""

    param_names = ("conductance",)
    fused_activation = "identity"

    def activation(self, u: Tensor, inplace: bool) -> Tensor:
        return u

    def slope(self, out: Tensor) -> Tensor:
        return torch.ones_like(out)

    def curvature(self, out: Tensor, slope: Tensor) -> Tensor:
        return torch.zeros_like(out)

    def coefficients(self, p: Params) -> tuple[Tensor, None, None, None]:
        return p[0], None, None, None

    def spice_coefficients(self, p: Sequence[str]) -> Coefficients:
        return p[0], None, None, None

    def spice_activation(self, u: str) -> str:
        return f"({u})"

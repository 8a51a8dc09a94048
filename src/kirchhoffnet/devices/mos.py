"""A ReLU device that transistors can build: one square-law MOSFET with its drain held at a small bias.

The KirchhoffNet poster's device is ``g = relu(θ1·(v_src − v_dst) + θ2)``. A MOSFET whose drain sits
``V_DS`` above its source and whose gate follows the terminal voltages,
``V_GS = V_T + sgn(θ1)·(v_src − v_dst) + θ2/|θ1| + V_DS/2``, conducts (Shichman–Hodges / SPICE
level 1, overdrive ``V_ov = V_GS − V_T``):

```text
0                            V_ov ≤ 0        cut-off
β·V_ov²/2                    0 < V_ov < V_DS  saturation
β·V_DS·(V_ov − V_DS/2)       V_ov ≥ V_DS      triode
```

With ``β·V_DS = |θ1|`` this is exactly ``relu(u)``, ``u = θ1·(v_src − v_dst) + θ2``, outside
``|u| < δ/2`` with ``δ = |θ1|·V_DS``, and a parabola joining the two lines inside: the corner is
rounded, by at most δ/8 at ``u = 0``, and the current is continuously differentiable, so gradients
exist everywhere. `kirchhoffnet.spice.mos` writes the transistor-level subcircuit and maps
θ to transistor widths and gate biases.

References: Z. Gao, F.-K. Sun, R. Rohrer, D. Boning, "KirchhoffNet: A Scalable Ultra Fast Analog
Neural Network" (the device g); H. Shichman, D. A. Hodges, "Modeling and simulation of
insulated-gate field-effect transistor switching circuits", IEEE J. Solid-State Circuits 3(3), 1968
(the level-1 law).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from kirchhoffnet.devices.base import (
    AffineActivation,
    Coefficients,
    Params,
    clamp_gradient_rule,
    clamp_gradient_setting,
    saturate_magnitude,
)
from kirchhoffnet.errors import DeviceError

_TINY_GAIN = 1e-12  # |θ1| floor: a zero gain is a constant current relu(θ2), reached in the limit


class MosRelu(AffineActivation):
    """``i ≈ relu(p0·(v_src − v_dst) + p1)``, the corner rounded as a level-1 MOSFET rounds it.

    In the transistor's normalised overdrive ``w = V_ov / V_DS`` the current is
    ``|p0|·V_DS · σ(w)`` with ``σ(w) = clamp(w, 0, 1)·(w − clamp(w, 0, 1)/2)``, i.e. 0, w²/2 or
    w − 1/2; so ``a = sgn(p0)/V_DS``, ``c = p1/(|p0|·V_DS) + 1/2`` and ``post = |p0|·V_DS``.

    The transistor's width is proportional to ``|p0|`` (`kirchhoffnet.spice.mos.fit_transistors`), so a card
    builds only gains within some range: ``gain_min`` and ``gain_max`` clamp ``|p0|`` there, in the law and in
    its SPICE export alike (outside them the gradient still reaches a gain the loss pulls back in: `clamp_inward`).

    Args:
        drain_voltage_v: the drain bias V_DS in V; the corner is rounded over ``|u| < |p0|·V_DS/2``.
            Smaller is closer to the ideal ReLU and needs wider transistors for the same current.
        gain_min: the smallest ``|p0|`` (the narrowest transistor); 0: no floor.
        gain_max: the largest ``|p0|`` (the widest transistor); None: no ceiling.
        clamp_gradient: ``inward`` or ``zero``: the gradient past a gain clamp (see TransistorTable's).
    """

    param_names = ("gain", "shift")
    fused_activation = "mos_relu"

    def __init__(
        self,
        drain_voltage_v: float = 0.1,
        gain_min: float = 0.0,
        gain_max: float | None = None,
        clamp_gradient: str = "inward",
    ) -> None:
        if not (math.isfinite(float(drain_voltage_v)) and float(drain_voltage_v) > 0):
            raise DeviceError(f"drain_voltage_v must be a positive voltage, got {drain_voltage_v}")
        ceiling = math.inf if gain_max is None else float(gain_max)
        if not (0 <= float(gain_min) <= ceiling and float(gain_min) < math.inf and ceiling > 0):
            raise DeviceError(f"gains must satisfy 0 <= gain_min <= gain_max, got {gain_min} and {gain_max}")
        self.drain_voltage_v = float(drain_voltage_v)
        self.gain_min = max(float(gain_min), _TINY_GAIN)
        self.gain_max = None if gain_max is None else max(float(gain_max), self.gain_min)
        self.clamp_gradient, self._clamp = clamp_gradient, clamp_gradient_rule(clamp_gradient)

    def hyperparameters(self) -> dict[str, Any]:
        if self.gain_min == _TINY_GAIN and self.gain_max is None:  # the unclamped law, as runs saved it before
            return {"drain_voltage_v": self.drain_voltage_v}
        rule = clamp_gradient_setting(self.clamp_gradient)
        return {"drain_voltage_v": self.drain_voltage_v, "gain_min": self.gain_min, "gain_max": self.gain_max, **rule}

    def initial(self, draw: Tensor) -> Tensor:
        """With gain clamps, the draw's gain inside them: sign kept, ``|p0|`` added to ``gain_min``
        (saturating below ``gain_max``); the shift, never clamped, as drawn. Unclamped: the draw itself."""
        if self.gain_min == _TINY_GAIN and self.gain_max is None:
            return draw
        reach = math.inf if self.gain_max is None else self.gain_max - self.gain_min
        return torch.stack([saturate_magnitude(draw[0], self.gain_min, reach), draw[1]])

    def gain_magnitude(self, gain: Tensor) -> Tensor:
        """``|p0|`` clamped into the buildable range."""
        return self._clamp(gain.abs(), self.gain_min, self.gain_max)

    def spice_activation(self, u: str) -> str:
        # The same polynomial as activation(): (relu(w)² − relu(w − 1)²) / 2, squared as products:
        # ``^`` is a power in ngspice but XOR in LTspice, and ``**`` is unknown to some simulators.
        low, high = f"max({u},0)", f"max({u}-1,0)"
        return f"({low}*{low}-{high}*{high})/2"

    def spice_coefficients(self, p: Sequence[str]) -> Coefficients:
        # sgn(p0) as p0/max(|p0|, tiny): exactly ±1 past the floor, and every simulator knows max and abs.
        magnitude = f"max(abs({p[0]}),{self.gain_min!r})"
        if self.gain_max is not None:
            magnitude = f"min({magnitude},{self.gain_max!r})"
        post = f"({magnitude}*{self.drain_voltage_v!r})"
        return f"({p[0]}/{post})", None, f"({p[1]}/{post}+0.5)", post

    def activation(self, u: Tensor, inplace: bool) -> Tensor:
        ramp = u.clamp(0.0, 1.0)
        if inplace:
            return u.sub_(ramp, alpha=0.5).mul_(ramp)
        return ramp * (u - 0.5 * ramp)

    def slope(self, out: Tensor) -> Tensor:
        # σ is w²/2 on (0, 1), so there σ' = w = sqrt(2σ); σ' = 1 once σ ≥ 1/2, 0 where σ = 0.
        # sqrt sees 1 off the parabola: its infinite derivative at 0 would turn autograd's 0·∞ into NaN.
        parabola = (out > 0) & (out < 0.5)
        root = torch.sqrt(2.0 * torch.where(parabola, out, torch.ones_like(out)))
        return torch.where(parabola, root, (out >= 0.5).to(out.dtype))

    def curvature(self, out: Tensor, slope: Tensor) -> Tensor:
        # σ'' = 1 on the parabola (0 < w < 1, where 0 < σ' < 1) and 0 on both straight parts.
        return ((slope > 0) & (slope < 1)).to(out.dtype)

    def coefficients(self, p: Params) -> tuple[Tensor, None, Tensor, Tensor]:
        gain, shift = p[0], p[1]
        post = self.gain_magnitude(gain) * self.drain_voltage_v
        return torch.sign(gain) / self.drain_voltage_v, None, shift / post + 0.5, post

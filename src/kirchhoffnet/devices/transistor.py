"""A device family whose I-V is a transistor's own drain current, tabulated from its SPICE model.

The edge is the circuit of `kirchhoffnet.spice.mos` (subcircuit ``kn_mosrelu``): one NMOS, source at
ground, drain held at a fixed ``V_DS``, gate driven to ``V_GS = V_b + pol·(v_src − v_dst)``, its drain
current mirrored from the edge's source terminal to its destination. So the edge current is
``W/W_ref · I_D(V_GS)``, and ``I_D`` at the reference width, measured in ngspice
(`kirchhoffnet.spice.tabulation`), is all the family needs to know about the transistor.

``I_D(V_GS)`` is stored as a C¹ piecewise-quadratic spline on uniform knots over ``[0, gate_max]``: its
slope (the transconductance) is piecewise linear, given at the knots, and the current is that
slope's integral. The kernels evaluate σ in place and then ask for σ' and σ'' through σ's value
alone; on a piece with slope ``s`` at its left knot, value ``y`` there and slope change ``k`` per
volt, ``σ'² = s² + 2k·(σ − y)`` (d(σ'²)/dσ = 2σ''), so the piece found by searching the knot values
gives σ' exactly, and σ'' = k. σ is flat (zero) below the first knot and flat (its last knot's value)
above the last: the gate is clamped to the table's range ``[0, gate_max]``, in the SPICE subcircuit as
here. A straight line past the table would claim a current the transistor does not carry: BSIM4's
drain current peaks near 3 V and falls beyond it (mobility degradation), which no monotone
extension follows, while the nodes of a trained network can drive ``V_b + pol·Δv`` far past
``gate_max`` (a twomoon flow's gates reached 5 V with a 1 V supply).
"""

from __future__ import annotations

import itertools
import json
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
    saturate,
    saturate_magnitude,
)
from kirchhoffnet.errors import DeviceError

_TINY_WIDTH = 1e-12  # |θ1| below which the polarity sgn θ1 is written as θ1/1e-12 in SPICE

# The default table: a level-1 NMOS (V_T = 0.5 V, V_DS = 0.1 V) on 0.05 V knots up to 3.6 V (twice
# the 1.8 V supply), its transconductance 0 up to V_T, rising linearly over V_DS (saturation), then
# constant (triode), scaled so that σ(1.8 V) = 1. The spline holds this law exactly up to its last knot,
# so a bare family name needs no ngspice.
_LEVEL1_SLOPES = (0.0,) * 11 + (0.4,) + (0.8,) * 61
_LEVEL1_SOURCE = {"law": "level 1, V_T = 0.5 V, V_DS = 0.1 V, current unit I_D(V_GS = 1.8 V)"}


class TransistorTable(AffineActivation):
    """``i = w·σ(pol·(v_src − v_dst) + V_b)``: a transistor's tabulated drain current σ(V_GS).

    Parameters: ``signed_width`` θ1 (its sign the polarity ``pol``, its magnitude the width ``w`` in
    units of the reference width) and ``gate_bias`` θ2 (``V_b`` in V). What a transistor can realise
    is enforced as clamps: ``w`` within ``[width_min, width_max]``, ``V_b`` within ``[0, supply_v]``.

    Args:
        slopes: σ'(V_GS) in current units per V at the ``len(slopes)`` uniform knots spanning
            ``[0, gate_max_v]``; non-negative, the first 0 (cut-off). Default: a level-1 NMOS.
        supply_v: the supply voltage, the range of the gate bias.
        gate_max_v: the table's last knot and the gate's upper clamp (default: twice the supply, the
            largest V_GS that a bias within the supply and a terminal drop within the rails make).
        width_min: the narrowest width, in reference widths.
        width_max: the widest width, in reference widths.
        source: where the table comes from (model card hash, model name, V_DS, L, the reference
            width, the current unit in A): kept in checkpoints so a realisation can check its card.
        clamp_gradient: ``inward`` (a width or bias past its clamp keeps the gradient leading back inside,
            `clamp_inward`) or ``zero`` (none there, as runs were trained before); see `CLAMP_GRADIENTS`.
    """

    param_names = ("signed_width", "gate_bias")

    def __init__(
        self,
        slopes: Sequence[float] | None = None,
        supply_v: float = 1.8,
        gate_max_v: float | None = None,
        width_min: float = 0.1,
        width_max: float = 10.0,
        source: dict[str, Any] | None = None,
        clamp_gradient: str = "inward",
    ) -> None:
        values = tuple(float(s) for s in (_LEVEL1_SLOPES if slopes is None else slopes))
        if len(values) < 2 or not all(math.isfinite(s) and s >= 0 for s in values) or values[0] != 0:
            raise DeviceError(
                "slopes must be at least two finite non-negative transconductances, the first 0 (cut-off); "
                f"got {len(values)} values starting {values[:3]}"
            )
        if not (math.isfinite(float(supply_v)) and float(supply_v) > 0):
            raise DeviceError(f"supply_v must be a positive voltage, got {supply_v}")
        gate_max = 2 * float(supply_v) if gate_max_v is None else float(gate_max_v)
        if not (math.isfinite(gate_max) and gate_max >= float(supply_v)):
            raise DeviceError(f"gate_max_v must be at least the supply {supply_v} V, got {gate_max_v}")
        if not (0 < float(width_min) <= float(width_max) < math.inf):
            raise DeviceError(f"widths must satisfy 0 < width_min <= width_max, got {width_min} and {width_max}")
        self.slopes = values
        self.supply_v, self.gate_max_v = float(supply_v), gate_max
        self.width_min, self.width_max = float(width_min), float(width_max)
        self.clamp_gradient, self._clamp = clamp_gradient, clamp_gradient_rule(clamp_gradient)
        self.source = dict(_LEVEL1_SOURCE if source is None and slopes is None else source or {})
        if "card_sha256" in self.source:  # tables made before PMOS cards record no polarity: they are NMOS
            self.source.setdefault("transistor", "nmos")
        self.step_v = self.gate_max_v / (len(values) - 1)
        # Per piece j (left knot j): slope s_j, slope change k_j per V, value y_j; the last piece
        # (past the table, where the gate is clamped) is flat: slope 0.
        self._piece_slopes = [*values[:-1], 0.0]
        self._change = [(b - a) / self.step_v for a, b in itertools.pairwise(values)] + [0.0]
        areas = (self.step_v * (a + b) / 2 for a, b in itertools.pairwise(values))
        self._values = list(itertools.accumulate(areas, initial=0.0))
        self._tables: dict[tuple[torch.dtype, torch.device], tuple[Tensor, Tensor, Tensor]] = {}
        self._last: tuple[Tensor, int, Tensor] | None = None

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "slopes": list(self.slopes),
            "supply_v": self.supply_v,
            "gate_max_v": self.gate_max_v,
            "width_min": self.width_min,
            "width_max": self.width_max,
            "source": self.source,
            **clamp_gradient_setting(self.clamp_gradient),
        }

    def __hash__(self) -> int:  # the settings hold lists, which the base class's tuple hash cannot take
        return hash(json.dumps(self.spec(), sort_keys=True))

    def _table(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(y, s, k) per piece as tensors of ``like``'s dtype and device, built once."""
        key = (like.dtype, like.device)
        if key not in self._tables:
            as_tensor = torch.tensor([self._values, self._piece_slopes, self._change], dtype=torch.float64)
            y, s, k = as_tensor.to(dtype=like.dtype, device=like.device).unbind(0)
            self._tables[key] = (y, s, k)
        return self._tables[key]

    def activation(self, u: Tensor, inplace: bool) -> Tensor:
        y, s, k = self._table(u)
        # nan_to_num: a NaN voltage must stay a NaN current (the solver names it), not become an index out of range
        piece = torch.floor(u.detach() / self.step_v).nan_to_num_(0.0).clamp_(0, len(self.slopes) - 1).long()
        t = (u - piece.to(u.dtype) * self.step_v).clamp_min(0.0)  # 0 below the first knot: cut-off
        out = y.take(piece) + t * (s.take(piece) + 0.5 * k.take(piece) * t)
        out = u.copy_(out) if inplace else out
        # The kernels ask for σ' and σ'' of this very output next; keeping its pieces (with the tensor, so
        # its memory is not reused, and its version, so an in-place change is noticed) spares the search.
        # Not while autograd records (the tensor would keep its graph alive) nor under torch.func transforms.
        self._last = None
        if not out.requires_grad and not torch._C._functorch.is_functorch_wrapped_tensor(out):
            self._last = (out, out._version, piece)
        return out

    def _piece(self, out: Tensor) -> Tensor:
        """The piece holding the value ``out``: the last knot whose value does not exceed it."""
        last = self._last
        if last is not None and last[0] is out and last[1] == out._version:
            return last[2]
        y = self._table(out)[0]
        return (torch.searchsorted(y, out.detach().contiguous(), right=True) - 1).clamp_(0, len(self.slopes) - 1)

    def slope(self, out: Tensor) -> Tensor:
        y, s, k = self._table(out)
        piece = self._piece(out)
        square = s.take(piece) ** 2 + 2.0 * k.take(piece) * (out - y.take(piece))
        # sqrt sees 1 where σ' = 0 (cut-off): its infinite derivative at 0 would make autograd's 0·∞ a NaN.
        positive = square > 0
        return torch.where(positive, torch.sqrt(torch.where(positive, square, torch.ones_like(square))), 0.0)

    def curvature(self, out: Tensor, slope: Tensor) -> Tensor:
        k = self._table(out)[2]
        return torch.where(slope > 0, k.take(self._piece(out)), 0.0)  # flat cut-off: σ'' = 0

    def initial(self, draw: Tensor) -> Tensor:
        """The draw inside the clamps: the width's sign kept and its magnitude ``|θ1|`` added to the
        narrowest width (saturating below the widest), the gate bias centred on half the supply.

        A kaiming draw (|θ1| ≈ 0.015 on the Fashion-MNIST circuit) is below any realisable width, and half
        its gate biases are negative: held at the clamps, they would not change the circuit until training had
        carried them back across (`clamp_inward`).
        """
        span, half = self.width_max - self.width_min, self.supply_v / 2
        return torch.stack([saturate_magnitude(draw[0], self.width_min, span), saturate(draw[1], half, half)])

    def coefficients(self, p: Params) -> tuple[Tensor, None, Tensor, Tensor]:
        width, bias = p[0], p[1]
        magnitude = self._clamp(width.abs(), self.width_min, self.width_max)
        return torch.sign(width), None, self._clamp(bias, 0.0, self.supply_v), magnitude

    def spice_coefficients(self, p: Sequence[str]) -> Coefficients:
        polarity = f"({p[0]}/max(abs({p[0]}),{_TINY_WIDTH!r}))"
        bias = f"min(max({p[1]},0),{self.supply_v!r})"
        width = f"min(max(abs({p[0]}),{self.width_min!r}),{self.width_max!r})"
        return polarity, None, bias, width

    def spice_activation(self, u: str) -> str:
        # Σ over the table's pieces of t·(s + k·t/2), t = u clamped into the piece: every term is
        # non-negative, so the sum loses no digits to cancellation; past the table nothing is added.
        terms = []
        for j in range(len(self.slopes) - 1):
            s, k = self.slopes[j], self._change[j]
            if s == 0 and k == 0:
                continue
            t = f"min(max({u}-{j * self.step_v!r},0),{self.step_v!r})"
            terms.append(f"{t}*({s!r}+{k / 2!r}*{t})" if k else f"{s!r}*{t}")
        return f"({'+'.join(terms) or '0'})"

"""The hidden nodes' equilibrium I_h(x, h, e) = g h, as a root-finding problem apart from the circuit.

A score circuit whose devices load their hidden terminals (``passive``) has, at every hidden node, a balance
F(h) = I_h(h) − g h that strictly decreases in h, so the equilibrium is unique at any gain and a bracketed
Newton solve finds it to rounding. No hidden node feeds another, so F and its Jacobian are per node: this
module is that dense balance and the Newton solve with its implicit gradient. It sees the devices only as
their affine-activation coefficients, laid out (inputs, hidden) by
`score_topology`, and the relaxation settle of bounded
circuits stays with the circuit's own currents.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from kirchhoffnet.devices.base import AffineActivation

SETTLE_ULPS = 100
"""The passive circuit's Newton settle stops when |I_h − g h| < SETTLE_ULPS × the dtype's epsilon at every hidden
node (normalised current): 1e-5 in float32, 2e-14 in float64."""


class HiddenBalance:
    """F = I_h − g h at the hidden nodes as a function of h alone, with the devices' inputs held fixed.

    Each device into a hidden node computes σ(a·v_src + b·h + c) (× an output scale): the part of its argument
    that does not depend on h is computed once here, so each evaluation while h settles is dense arithmetic on
    (inputs, hidden, B) tensors with no gather over edges.

    Args:
        family: the devices' affine-activation family.
        params: programmed parameters of the devices into the hidden nodes, (P, inputs · hidden) in edge order.
        leak: conductance g from every hidden node to ground.
        sources: voltages at the devices' input terminals, (inputs, B) in edge order.
    """

    def __init__(self, family: AffineActivation, params: Tensor, leak: float, sources: Tensor) -> None:
        a, b, c, post = family.coefficients(params)
        layout = (len(sources), -1, 1)  # (inputs, hidden, 1)
        a = sources.new_ones(params.shape[1]) if a is None else a
        self.family, self.leak = family, leak
        self.gain = (-a if b is None else b).view(layout)  # the difference form a·(v_src − h) loads h by −a
        fixed = a.view(layout) * sources.unsqueeze(1)
        self.fixed = fixed if c is None else fixed + c.view(layout)
        self.post = None if post is None else post.view(layout)

    @property
    def hidden(self) -> int:
        """Hidden nodes."""
        return self.fixed.shape[1]

    def __call__(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """F at ``h`` and its diagonal dF/dh. Shapes: h (hidden, B) → (hidden, B), (hidden, B)."""
        out = self.family.activation(self.fixed + self.gain * h, inplace=False)
        slope = self.gain * self.family.slope(out)
        if self.post is not None:
            out, slope = out * self.post, slope * self.post
        return out.sum(0) - self.leak * h, slope.sum(0) - self.leak


def newton_settle(
    balance_at: Callable[[Tensor, Tensor], HiddenBalance], x: Tensor, drive: Tensor, guess: Tensor | None, steps: int
) -> Tensor:
    """The root of a decreasing hidden balance by safeguarded Newton, at most ``steps`` steps from ``guess``
    (None: 0), differentiated by the implicit function theorem.

    ``balance_at(x, drive)`` builds the balance for the data nodes ``x`` and the driven nodes ``drive``; its
    dF/dh must be ≤ −g (a passive circuit's), which brackets the root and makes Newton's step safe to check.

    Shapes:
        x: (dim, B); drive: (driven, B) or (driven, 1); guess: (hidden, B). Returns (hidden, B).
    """
    with torch.no_grad():
        equation = balance_at(x.detach(), drive.detach())  # the same at every Newton step
        h = x.new_zeros(equation.hidden, x.shape[1]) if guess is None else guess.detach().clone()
        balance, slope = equation(h)
        # dF/dh ≤ −g everywhere, so the root lies within |F(h)| / g of any h: a bracket to start from
        reach = balance.abs() / equation.leak
        low, high = h - reach, h + reach
        previous = torch.full_like(h, math.inf)
        tolerance = SETTLE_ULPS * torch.finfo(h.dtype).eps
        for _ in range(steps):
            size = balance.abs()
            done = size < tolerance
            if bool(done.all()):
                break
            low = torch.where(balance > 0, h, low)  # F decreasing: the root is above h
            high = torch.where(balance <= 0, h, high)
            newton = h - balance / slope
            # Newton where it stays inside the bracket and halves |F|; bisection otherwise
            trusted = (newton >= low) & (newton <= high) & (size < 0.5 * previous)
            previous = size
            h = torch.where(done, h, torch.where(trusted, newton, 0.5 * (low + high)))
            balance, slope = equation(h)
    if not torch.is_grad_enabled():
        return h
    # one Newton step from the (detached) root: its value is h, its derivative −(∂F/∂θ)/(∂F/∂h), exactly
    # the implicit-function gradient
    return h - balance_at(x, drive)(h)[0] / slope

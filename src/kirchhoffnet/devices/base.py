"""The two-terminal device abstraction: one I-V family with analytic slopes.

A device family is a stateless description ``i = g(v_src, v_dst; p)`` of the current flowing
from the source terminal to the destination terminal. The learnable parameters ``p`` live in the
circuit slice (one column per edge), so one family object serves every edge of a slice.

Subclassing [`Device`][kirchhoffnet.devices.Device] registers the family under its class name; nothing else is needed to
make it available to circuits, configs and checkpoints.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from kirchhoffnet.errors import DeviceError, unknown_choice

Params = Tensor | Sequence[Tensor]
"""Device parameters: ``num_params`` rows (a (P, ...) tensor or a sequence), each broadcastable
against the voltages."""

Coefficients = tuple[str | None, str | None, str | None, str | None]
"""``(a, b, c, post)`` of an [`AffineActivation`][kirchhoffnet.devices.AffineActivation] as SPICE expressions of
parameter names."""


class Device(ABC):
    """An I-V family ``i = g(v_src, v_dst; p)``; current flows src → dst.

    Subclasses set `param_names` and implement [`current`][kirchhoffnet.devices.Device.current] and
    [`current_and_slopes`][kirchhoffnet.devices.Device.current_and_slopes]. The slopes are the analytic partial
    derivatives ``∂i/∂v_src`` and ``∂i/∂v_dst`` that make the exact CNF divergence cost O(E).
    """

    param_names: ClassVar[tuple[str, ...]] = ()
    registry: ClassVar[dict[str, type[Device]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.param_names:  # abstract intermediate classes have no parameters yet
            Device.registry[cls.__name__] = cls

    @property
    def num_params(self) -> int:
        """Number of learnable parameters per edge."""
        return len(self.param_names)

    @property
    def name(self) -> str:
        return type(self).__name__

    def initial(self, draw: Tensor) -> Tensor:
        """The (P, E) parameters a fresh slice starts from, given its initialiser's ``draw``.

        A family that clamps parameters to what its hardware can realise overrides this to map the
        draw inside the clamps: a parameter that starts at a clamp has zero gradient and never trains.
        The others start from the draw itself.
        """
        return draw

    @abstractmethod
    def current(self, v_src: Tensor, v_dst: Tensor, p: Params, scratch: bool = False) -> Tensor:
        """Current src → dst for terminal voltages ``v_src``, ``v_dst``.

        With ``scratch=True`` the caller hands over ``v_src`` and ``v_dst`` as scratch buffers
        that a family may overwrite when nothing requires a gradient (the KCL kernel's hot loop).
        """
        ...

    def current_and_slopes(
        self, v_src: Tensor, v_dst: Tensor, p: Params, scratch: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Current and its analytic derivatives ``(i, ∂i/∂v_src, ∂i/∂v_dst)``."""
        raise DeviceError(
            f"device family {self.name} defines no current_and_slopes(); the exact divergence (flows) needs "
            "the analytic slopes ∂i/∂v_src, ∂i/∂v_dst: add it to the class"
        )

    def hyperparameters(self) -> dict[str, Any]:
        """Fixed (non-learnable) settings, stored in checkpoints to rebuild the family."""
        return {}

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable description: ``{"name": ..., **hyperparameters}``."""
        return {"name": self.name, **self.hyperparameters()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{self.name}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.hyperparameters().items()))))


def available() -> list[str]:
    """Names of every registered device family."""
    return sorted(Device.registry)


def resolve(device: str | Device | dict[str, Any]) -> Device:
    """Turn a family name, a spec dict or an instance into a [`Device`][kirchhoffnet.devices.Device].

    Names match case-insensitively. An unknown name raises [`DeviceError`][kirchhoffnet.errors.DeviceError] listing the
    valid ones.
    """
    if isinstance(device, Device):
        return device
    if isinstance(device, dict):
        spec = dict(device)
        family = _lookup(spec.pop("name", None))
        try:
            return family(**spec)
        except TypeError as exc:
            raise DeviceError(f"bad settings {spec} for device family {family.__name__}: {exc}") from None
    if isinstance(device, str):
        return _lookup(device)()
    raise DeviceError(f"device must be a name, a spec dict or a Device, got {type(device).__name__}")


def _lookup(name: object) -> type[Device]:
    if isinstance(name, str):
        by_lower = {key.lower(): cls for key, cls in Device.registry.items()}
        if name.lower() in by_lower:
            return by_lower[name.lower()]
    raise DeviceError(unknown_choice("device family", name, Device.registry))


class AffineActivation(Device):
    """Families of the form ``i = post · σ(a·v_src + b·v_dst + c)``.

    Every ideal family of the KirchhoffNet paper is an activation σ of an affine combination of
    the terminal voltages, optionally scaled. Subclasses give σ, its slope, and the map from
    their parameters to ``(a, b, c, post)``. ``b = None`` selects the difference form
    ``a·(v_src − v_dst)``; any other ``None`` is an absent coefficient (unit gain, zero shift),
    which saves an elementwise pass in the hot loop.

    Given scratch buffers and no gradient to record, the whole computation runs in place in
    ``v_src``: on large circuits the cost is memory traffic and allocation, and in-place passes
    remove both.
    """

    fused_activation: ClassVar[str | None] = None
    """The σ the fused CPU kernel (`kirchhoffnet.circuit._fused`) computes for this family:
    ``identity``, ``relu``, ``leaky_relu``, ``tanh`` or ``mos_relu``; ``None`` keeps it on the torch paths."""

    @abstractmethod
    def activation(self, u: Tensor, inplace: bool) -> Tensor:
        """σ(u), overwriting ``u`` when ``inplace``."""
        ...

    @abstractmethod
    def slope(self, out: Tensor) -> Tensor:
        """σ'(u) expressed through ``out = σ(u)`` (so the activation may run in place)."""
        ...

    def curvature(self, out: Tensor, slope: Tensor) -> Tensor:
        """σ''(u) through ``out = σ(u)`` and ``slope = σ'(u)``: the divergence's backward pass needs it."""
        raise DeviceError(
            f"device family {self.name} defines no curvature(out, slope); gradients of the exact divergence "
            "(CNF training through the fused kernel) need σ''(u): add it to the class"
        )

    @abstractmethod
    def coefficients(self, p: Params) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
        """``(a, b, c, post)`` for this family's parameters."""
        ...

    def spice_activation(self, u: str) -> str:
        """σ as a SPICE behavioural expression of the argument expression ``u``.

        The netlist writer ([`kirchhoffnet.spice`][kirchhoffnet.spice]) builds ``u`` and the ``post`` factor from
        [`coefficients`][kirchhoffnet.devices.AffineActivation.coefficients], so a family exports to SPICE by naming its
        activation here.
        """
        raise DeviceError(
            f"device family {self.name} cannot be exported to SPICE: it defines no spice_activation(u) "
            "expression; add one (e.g. 'tanh(u)') to the class"
        )

    def spice_coefficients(self, p: Sequence[str]) -> Coefficients:
        """[`coefficients`][kirchhoffnet.devices.AffineActivation.coefficients] as SPICE expressions of the parameter
        names ``p`` (``None`` as there).

        A parameterised deck (`kirchhoffnet.spice.deck`) writes one subcircuit per family from
        these, so the learned values stay numbers in a parameter file instead of being folded into
        each edge's law.
        """
        raise DeviceError(
            f"device family {self.name} cannot be written as a parameterised SPICE subcircuit: it defines no "
            "spice_coefficients(p); add one mirroring coefficients()"
        )

    def _activated(
        self, v_src: Tensor, v_dst: Tensor, coefficients: tuple[Tensor | None, ...], scratch: bool
    ) -> tuple[Tensor, bool]:
        """σ(a·v_src + b·v_dst + c), and whether it was computed in place in ``v_src``. The callers compute the
        coefficients once: a clamp's gradient (`clamp_inward`) is decided on the sum over all their uses."""
        a, b, c, post = coefficients
        recording = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (v_src, v_dst, a, b, c, post)
        )
        if scratch and not recording:
            u = v_src
            if b is None:
                u.sub_(v_dst)
                if a is not None:
                    u.mul_(a)
            else:
                if a is not None:
                    u.mul_(a)
                u.addcmul_(b, v_dst)
            if c is not None:
                u.add_(c)
            return self.activation(u, inplace=True), True
        if b is None:
            u = v_src - v_dst if a is None else a * (v_src - v_dst)
        else:
            u = torch.addcmul(v_src if a is None else a * v_src, b, v_dst)
        return self.activation(u if c is None else u + c, inplace=False), False

    def current(self, v_src: Tensor, v_dst: Tensor, p: Params, scratch: bool = False) -> Tensor:
        coefficients = self.coefficients(p)
        out, in_place = self._activated(v_src, v_dst, coefficients, scratch)
        post = coefficients[3]
        if post is None:
            return out
        return out.mul_(post) if in_place else out * post

    def current_and_slopes(
        self, v_src: Tensor, v_dst: Tensor, p: Params, scratch: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        coefficients = self.coefficients(p)
        a, b, _, post = coefficients
        out, in_place = self._activated(v_src, v_dst, coefficients, scratch)
        slope = self.slope(out)
        if post is not None:
            out = out.mul_(post) if in_place else out * post
            slope = slope.mul_(post) if in_place else slope * post
        d_src = slope if a is None else slope * a
        d_dst = -d_src if b is None else slope * b
        return out, d_src, d_dst


class TerminalGains:
    """Parameters ``(gain_src, gain_dst, shift)`` of ``σ(p0·v_src + p1·v_dst + p2)``: each terminal its own gain.

    Mixed in before an activation class: ``class ShiftTanh2(TerminalGains, _Tanh)``.
    """

    param_names: ClassVar[tuple[str, ...]] = ("gain_src", "gain_dst", "shift")

    def coefficients(self, p: Params) -> tuple[Tensor, Tensor, Tensor, None]:
        return p[0], p[1], p[2], None

    def spice_coefficients(self, p: Sequence[str]) -> Coefficients:
        return p[0], p[1], p[2], None


class GatedDrop:
    """Parameters ``(threshold, gain)`` of ``p1·σ(v_src − v_dst − p0)``: a drop past a threshold, scaled.

    Mixed in before an activation class: ``class ShiftRelu1(GatedDrop, _Relu)``.
    """

    param_names: ClassVar[tuple[str, ...]] = ("threshold", "gain")

    def coefficients(self, p: Params) -> tuple[None, None, Tensor, Tensor]:
        return None, None, -p[0], p[1]

    def spice_coefficients(self, p: Sequence[str]) -> Coefficients:
        return None, None, f"(-{p[0]})", p[1]


def saturate(draw: Tensor, anchor: float, reach: float) -> Tensor:
    """``anchor + reach·tanh(draw/reach)``: the draw itself near the anchor, never ``reach`` past it.

    How a clamped family maps an initialiser's draw inside its range (`Device.initial`): small draws are
    kept as they were, large ones stay inside, so every parameter starts where its gradient is nonzero.
    ``reach`` infinite: ``anchor + draw``. Draws past ~9·reach (float32) round onto the edge of the range.
    """
    return draw + anchor if math.isinf(reach) else anchor + reach * torch.tanh(draw / reach)


def saturate_magnitude(draw: Tensor, low: float, reach: float) -> Tensor:
    """A signed parameter whose magnitude is clamped from ``low``: the draw's sign kept, its magnitude
    mapped by `saturate` (anchored at ``low``)."""
    return torch.where(draw < 0, -1.0, 1.0) * saturate(draw.abs(), low, reach)


CLAMP_GRADIENTS = ("inward", "zero")
"""How a clamped family's parameters train past a clamp: ``inward`` (`clamp_inward`), or ``zero`` (torch's clamp:
no gradient there, how every run was trained before issue 23's fix; configs whose figures came from it pin it)."""


def clamp_gradient_rule(rule: str) -> Callable[[Tensor, float, float | None], Tensor]:
    """The clamp of a family's ``clamp_gradient`` setting (one of `CLAMP_GRADIENTS`)."""
    if rule not in CLAMP_GRADIENTS:
        raise DeviceError(f"clamp_gradient must be one of {', '.join(CLAMP_GRADIENTS)}, got {rule!r}")
    return clamp_inward if rule == "inward" else Tensor.clamp


def clamp_gradient_setting(rule: str) -> dict[str, str]:
    """The family's ``hyperparameters`` entry for ``rule``: none for the default, so the specs saved before the
    setting existed are those of today's default."""
    return {} if rule == CLAMP_GRADIENTS[0] else {"clamp_gradient": rule}


def clamp_inward(value: Tensor, low: float, high: float | None) -> Tensor:
    """``value.clamp(low, high)`` whose gradient also reaches a value past a bound whenever a descent step
    would move it back toward the range (a straight-through clamp, one-sided).

    With torch's clamp a parameter that training pushed onto a buildable limit has zero gradient there for
    good: 81.9 % of the Fashion-MNIST table classifier's widths ended on their floor, and no later gradient
    could raise them again. Here the loss can still pull them back; a push further out is dropped, so a
    parameter never drifts past its bound. The forward value, and so every export, is the plain clamp.
    """
    if not (torch.is_grad_enabled() and value.requires_grad) or torch.compiler.is_compiling():
        return value.clamp(low, high)
    return _InwardClamp.apply(value, low, high)


class _InwardClamp(torch.autograd.Function):
    """`clamp_inward`'s autograd node: the clamp forward, the one-sided straight-through gradient backward."""

    generate_vmap_rule = True  # torch.func (grad, vmap) runs it too

    @staticmethod
    def forward(value: Tensor, low: float, high: float | None) -> Tensor:
        return value.clamp(low, high)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, float, float | None], output: Tensor) -> None:
        value, ctx.low, ctx.high = inputs
        ctx.save_for_backward(value)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (value,) = ctx.saved_tensors
        outward = (value < ctx.low) & (grad > 0)  # descent (−grad) would lower it further below the floor
        if ctx.high is not None:
            outward |= (value > ctx.high) & (grad < 0)
        return torch.where(outward, torch.zeros_like(grad), grad), None, None

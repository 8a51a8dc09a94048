"""The adjoint method with the circuit's closed-form vector-Jacobian products.

torchdiffeq's ``odeint_adjoint`` differentiates the right-hand side by autograd at every step of
the backward solve: per evaluation it records a graph and runs the autograd engine through it.
For slices on the dense fused kernel (the 2-D flows) the vector-Jacobian product has a closed form
(`vjp`), so here the backward solve
evaluates it directly and builds no graph.

The solves themselves are torchdiffeq's, arranged as ``odeint_adjoint`` arranges them: the same
augmented state ``(t-adjoint, v, v-adjoint, parameter adjoints)``, the same mixed norm and the
same tolerances, so both take the same steps and return the same gradient up to rounding. The
parameter adjoints are integrated for the device coefficients ``(a, b, c, post)`` that the family
derives from its parameters; they do not depend on time, so autograd applies the chain rule to
the parameters once, after the solve. For every shipped family each coefficient is ± a parameter
row, which keeps the norm identical too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchdiffeq import odeint

from kirchhoffnet.circuit import Slice
from kirchhoffnet.circuit._kcl import KclKernel
from kirchhoffnet.devices import AffineActivation
from kirchhoffnet.errors import SolverError
from kirchhoffnet.solve._fused_rk import STAGES, Activation, Dopri5, FusedProblem, StepError, norm_groups

Field = Callable[[Tensor, Tensor], Tensor]
PartsNorm = Callable[[Tensor, Tensor, Tensor | None], Tensor]
"""The adjoint solve's norm of ``(y, y-adjoint, coefficient adjoints or None)``."""
_NAMES = ("a", "b", "c", "post")


def _rms(t: Tensor) -> Tensor:
    return t.abs().pow(2).mean().sqrt()


class _AdjointSystem:
    """A slice's adjoint dynamics for fixed device coefficients, without autograd."""

    def __init__(
        self,
        kernel: KclKernel,
        device: AffineActivation,
        divergence: bool,
        coefficients: dict[str, Tensor],
        learned: list[str],
        field: Field,
        count: Callable[[Tensor], None],
        request: str,
        fused: Callable[[int], None] | None,
        seminorm: bool,
    ) -> None:
        self.divergence, self.learned, self.field, self.count = divergence, learned, field, count
        self.seminorm = seminorm  # the step control leaves the coefficient adjoints out
        self.fused = fused  # counts the fused integrator's evaluations; None: torchdiffeq steps both solves
        self.difference_form = "b" not in coefficients  # b = −a
        abc = tuple(coefficients.get(n) for n in _NAMES[:3])
        self.whole = kernel.whole_affine(device, abc, coefficients.get("post"), request)  # once per solve
        self.num_edges = kernel.num_edges

    def __call__(self, t: Tensor, aug: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """d/dt of ``(t-adjoint, y, y-adjoint, coefficient adjoints)``, as ``odeint_adjoint`` defines it."""
        self.count(t)
        rate, grad_y, learned = self.dynamics(aug[1], aug[2])
        return (torch.zeros_like(aug[0]), rate, grad_y, *([] if learned is None else [learned]))

    def dynamics(
        self, y: Tensor, adj: Tensor, into: tuple[Tensor, Tensor, Tensor] | None = None, sign: float = 1.0
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """d/dt of ``y``, of its adjoint ``adj`` and of the learned coefficients' adjoints (``None``: none learned),
        each times ``sign``; written into ``into`` where given (the fused solve's rate vector: no copies)."""
        state = y[:-1] if self.divergence else y
        # The product is taken with −adj; the log-density row is −tr, so tr's cotangent is +adj.
        grad_out = (adj[:-1] if self.divergence else adj).neg()
        grad_trace = adj[-1] if self.divergence else None
        out, trace, grad_state, grad_coeffs, grad_post = self.whole.field_and_vjp(
            state, grad_out, grad_trace, "post" in self.learned
        )
        if into is None:
            into = (torch.empty_like(y), torch.empty_like(adj), y.new_empty(len(self.learned), self.num_edges))
        rate, grad_y, learned = into
        if self.divergence:
            torch.mul(out, sign, out=rate[:-1])
            torch.mul(trace, -sign, out=rate[-1])
            torch.mul(grad_state, sign, out=grad_y[:-1])
            grad_y[-1].zero_()
        else:
            torch.mul(out, sign, out=rate)
            torch.mul(grad_state, sign, out=grad_y)
        grad_a = grad_coeffs[:, 0] - grad_coeffs[:, 1] if self.difference_form else grad_coeffs[:, 0]
        grads = {"a": grad_a, "b": grad_coeffs[:, 1], "c": grad_coeffs[:, 2], "post": grad_post}
        for row, name in zip(learned, self.learned, strict=True):
            torch.mul(grads[name], sign, out=row)  # type: ignore[arg-type]  # post is asked for when learned
        return rate, grad_y, learned if self.learned else None


class _AdjointSteps(Dopri5):
    """The adjoint solve on the fused integrator's step control (`Dopri5`): the augmented state
    ``(y, y-adjoint, coefficient adjoints)`` flattened into one vector, measured with ``odeint_adjoint``'s norm
    (the t-adjoint it carries too is zero throughout: its rate is zero, so it never counts), so that the
    steps are torchdiffeq's."""

    def __init__(self, system: _AdjointSystem, shape: torch.Size, norm: PartsNorm, **control: Any) -> None:
        super().__init__(**control)
        self.system, self.shape, self.norm = system, shape, norm
        self.size = shape.numel()
        if system.whole.small is not None:
            # The small kernel's norm: the largest RMS of the voltages and the log-density row of y and of its
            # adjoint, then (unless seminorm) of the coefficient adjoints; the learned rows from its (a, b, c, post).
            part = [self.size - shape[1], shape[1]] if system.divergence else [self.size]
            learned = [] if system.seminorm else [len(system.learned) * system.num_edges]
            self.groups = norm_groups(part + part + learned)
            rows = {"a": (1, -1 if system.difference_form else 0, 0, 0), "b": (0, 1, 0, 0), "c": (0, 0, 1, 0)}
            rows["post"] = (0, 0, 0, 1)
            self.mapping = np.array([rows[n] for n in system.learned], dtype=np.float32).reshape(-1, 4)

    def _parts(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = self.size  # slices, not Tensor.split: a Python-level call that cost more than the three views
        state, adj, learned = y[:n], y[n : 2 * n], y[2 * n :]
        return state.view(self.shape), adj.view(self.shape), learned.view(-1, self.system.num_edges)

    def _rate(self, y: Tensor, out: Tensor) -> None:
        state, adj, _ = self._parts(y)
        self.system.dynamics(state, adj, self._parts(out), self.sign)

    def _attempt(
        self, y: Tensor, activation: Activation, table: Tensor, rates: Tensor, shape: torch.Size
    ) -> tuple[list[Tensor], list[Activation], float, bool]:
        """On the small-circuit kernel, the whole trial step in one call (`SmallKcl.rk_adjoint`); the torch stages
        elsewhere. No backward pass follows an adjoint solve: its stages are not kept."""
        small = self.system.whole.small
        if small is None:
            return super()._attempt(y, activation, table, rates, shape)
        states = rates.new_empty(rates.shape)
        tolerances = (self.rtol, self.atol, self.groups)
        ratio, finite = small.rk_adjoint(
            y, table, rates, states, self.system.divergence, self.sign, self.mapping, tolerances
        )
        return list(states.unbind(0)), [activation] * STAGES, ratio, finite

    def _norm(self, y: Tensor) -> Tensor:
        state, adj, learned = self._parts(y)
        return self.norm(state, adj, learned if learned.numel() else None)

    def flatten(self, aug: list[Tensor]) -> Tensor:
        """torchdiffeq's augmented state (t-adjoint first) as this solve's vector."""
        return torch.cat([part.reshape(-1) for part in aug[1:]])

    def unflatten(self, aug: list[Tensor], y: Tensor) -> list[Tensor]:
        """This solve's vector as torchdiffeq's augmented state, the t-adjoint taken from ``aug``."""
        state, adj, learned = self._parts(y)
        return [aug[0], state, adj, *([learned] if self.system.learned else [])]


def _control(kwargs: dict[str, Any], span: tuple[float, float], count: Callable[[int], None]) -> dict[str, Any]:
    """`Dopri5`'s arguments from odeint's keyword arguments."""
    options = kwargs["options"]
    steps = {"first_step": options.get("first_step"), "min_step": options["min_step"]}
    return {**steps, "max_steps": options["max_num_steps"], "span": span, "count": count, **_tolerances(kwargs)}


def _tolerances(kwargs: dict[str, Any]) -> dict[str, float]:
    return {"rtol": kwargs["rtol"], "atol": kwargs["atol"]}


class _AnalyticAdjoint(torch.autograd.Function):
    """odeint forward without a graph; backward solves the adjoint ODE with closed-form products."""

    @staticmethod
    def forward(
        ctx: Any, system: _AdjointSystem, solves: tuple[dict[str, Any], ...], t: Tensor, y0: Tensor, *_: Tensor
    ) -> Tensor:
        """``solves`` holds odeint's keyword arguments for the forward and the adjoint solve; the
        trailing inputs are the learned coefficients, which the adjoint solve differentiates."""
        kwargs, adjoint_kwargs, norm = solves
        with torch.no_grad():
            if system.fused is None:
                ys = odeint(system.field, y0, t, **kwargs)
            else:
                control = _control(kwargs, (float(t[0]), float(t[-1])), system.fused)
                ys = torch.stack([y0, FusedProblem(system.whole, system.divergence, **control).solve(y0, False)[0]])
        ctx.save_for_backward(t, ys)
        ctx.system, ctx.adjoint_kwargs, ctx.norm = system, adjoint_kwargs, norm
        return ys

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_ys: Tensor) -> tuple[Tensor | None, ...]:
        t, ys = ctx.saved_tensors
        system: _AdjointSystem = ctx.system
        learned = [ys.new_zeros(len(system.learned), system.num_edges)] if system.learned else []
        aug: list[Tensor] = [ys.new_zeros(()), ys[-1], grad_ys[-1], *learned]
        for i in range(len(t) - 1, 0, -1):
            try:
                if system.fused is None:
                    aug = [a[1] for a in odeint(system, tuple(aug), t[i - 1 : i + 1].flip(0), **ctx.adjoint_kwargs)]
                else:
                    span = (float(t[i]), float(t[i - 1]))
                    control = _control(ctx.adjoint_kwargs, span, system.fused)
                    steps = _AdjointSteps(system, ys.shape[1:], ctx.norm, **control)
                    aug = steps.unflatten(aug, steps.solve(steps.flatten(aug), False)[0])
            except (AssertionError, StepError) as exc:  # torchdiffeq reports a failed solve with a bare assert
                reason = " ".join(str(exc).split()) or "its step size underflowed or it ran out of steps"
                raise SolverError(
                    f"the adjoint (backward) solve from t = {float(t[i]):g} to {float(t[i - 1]):g} failed: "
                    f"{reason[:200]}; the gradients blow up: lower the learning rate, set train.grad_clip, "
                    "or loosen rtol/atol"
                ) from None
            aug[1] = ys[i - 1]  # the forward pass's state, as odeint_adjoint does
            aug[2] = aug[2] + grad_ys[i - 1]
        grads = list(aug[3].unbind(0)) if system.learned else []
        return (None, None, None, aug[2], *grads)


def analytic_adjoint(
    piece: Slice,
    field: Field,
    divergence: bool,
    y0: Tensor,
    t: Tensor,
    kwargs: dict[str, Any],
    adjoint_options: dict[str, Any],
    count: Callable[[Tensor], None],
    request: str = "auto",
    fused: Callable[[int], None] | None = None,
) -> Tensor:
    """``odeint_adjoint(field, y0, t, **kwargs)`` for a slice whose kernel has a closed-form adjoint for
    its device family ([`closed_form_adjoint`][kirchhoffnet.circuit.KclKernel.closed_form_adjoint]).

    Args:
        piece: the slice; its parameters receive gradients.
        field: the forward right-hand side (it counts its own evaluations).
        divergence: the state's last row is log p, whose rate is −tr(∂f/∂v).
        kwargs: ``rtol``, ``atol``, ``method`` and ``options`` (with the state ``norm`` if any).
        adjoint_options: the solver's adjoint options (``norm="seminorm"`` leaves the parameter
            adjoints out of the step control).
        count: called with ``t`` on every evaluation of the adjoint dynamics.
        request: the solver's ``kernel`` (whether the numba kernel may evaluate the products).
        fused: the fused integrator steps both solves (dopri5 only: torchdiffeq's steps, decision for decision,
            without its per-stage overhead), reporting its evaluations here; ``None``: torchdiffeq steps them.
    """
    device = piece.device_family
    kernel = piece.kernel(y0.dtype, y0.device)
    if not (kernel.closed_form_adjoint(device, request) and isinstance(device, AffineActivation)):
        raise ValueError(f"{device.name} on this slice has no closed-form vector-Jacobian product")
    params = piece.params.to(y0.dtype)
    values = device.coefficients(params)
    coefficients = {n: v for n, v in zip(_NAMES, values, strict=True) if v is not None}
    learned = [n for n in coefficients if torch.is_grad_enabled() and params.requires_grad]
    detached = {n: v.detach() for n, v in coefficients.items()}
    with_params = adjoint_options.get("norm") != "seminorm"
    system = _AdjointSystem(
        kernel, device, divergence, detached, learned, field, count, request, fused, not with_params
    )
    state_norm: Callable[[Tensor], Tensor] = kwargs["options"].get("norm", _rms)

    def parts_norm(state: Tensor, adj: Tensor, learned_adj: Tensor | None) -> Tensor:
        norms = [state_norm(state), state_norm(adj)]
        if with_params and learned_adj is not None:
            norms.append(_rms(learned_adj))
        return torch.stack(norms).max()

    def adjoint_norm(aug: tuple[Tensor, ...]) -> Tensor:
        return torch.maximum(aug[0].abs(), parts_norm(aug[1], aug[2], aug[3] if len(aug) > 3 else None))

    options = {**{k: v for k, v in adjoint_options.items() if k != "norm"}, "norm": adjoint_norm}
    adjoint_kwargs = {**kwargs, "options": options}
    inputs = [coefficients[n] for n in learned]
    return _AnalyticAdjoint.apply(system, (kwargs, adjoint_kwargs, parts_norm), t, y0, *inputs)

"""A slice's whole adaptive Dormand–Prince solve as one autograd node: the ``fused`` integrator.

torchdiffeq takes each stage as a handful of small tensor operations, each a Python call and, while
autograd records, a graph node; on the 2-D flows (300 edges, a few hundred samples) that bookkeeping costs
about as much as the field itself. For slices whose field has a closed-form vector-Jacobian product
(`WholeAffine`, the ``affine-vjp`` path) this module runs the solve without autograd, the stage rates in one
preallocated block, and reproduces torchdiffeq's dopri5 step control decision for decision — initial step
selection, error ratio under the state's norm with ``rtol``/``atol``, safety 0.9, growth at most 10×,
shrink at most 5×, first same as last, the last step cut to land on the slice end — so it takes the same
steps and the same number of evaluations, and ends on the same voltages up to rounding. On the small-circuit kernel
(`SmallKcl`) each trial step — stages, evaluations, error norm — is one numba call (`_attempt`); the step control
stays here. It sums the error estimate in float64: where that estimate is mostly float32 rounding, its step sizes
can part from the torch stages' by a trial step.

Its backward pass is the discrete adjoint of the accepted steps: each step's stages in reverse, each
through `WholeAffine.vjp` at the stage's state, σ(U) and σ'(U) kept from the forward pass. That is the gradient
of the computed solution with the step sizes held constant. torchdiffeq's backprop chooses its later steps
without a graph too, but differentiates its initial step selection (when no ``first_step`` is given): on the
twomoon checkpoint in float64 at tolerance 1e-4 the gradients agree to 6e-13 with the checkpoint's
``first_step`` and differ by 3.6e-4 without (``experiments/fused_step_gradient.py``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.circuit._affine import WholeAffine

# Dormand–Prince 5(4) as torchdiffeq tabulates it: row i holds stage i+1's weights on stages 0..i; the
# last row is also the 5th-order solution (first same as last: the last stage is evaluated at y1).
_STAGE_ROWS = (
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_ERROR_ROW = (
    35 / 384 - 1951 / 21600,
    0,
    500 / 1113 - 22642 / 50085,
    125 / 192 - 451 / 720,
    -2187 / 6784 - -12231 / 42400,
    11 / 84 - 649 / 6300,
    -1.0 / 60.0,
)
STAGES = 7
ORDER = 5
SAFETY, GROWTH, SHRINK = 0.9, 10.0, 0.2  # torchdiffeq's safety, ifactor, dfactor


def _weights() -> Tensor:
    """(STAGES, STAGES) float64: rows 0..5 the stage rows (zero-padded), row 6 the error weights."""
    table = torch.zeros(STAGES, STAGES, dtype=torch.float64)
    for i, row in enumerate(_STAGE_ROWS):
        table[i, : len(row)] = torch.tensor(row, dtype=torch.float64)
    table[STAGES - 1] = torch.tensor(_ERROR_ROW, dtype=torch.float64)
    return table


_WEIGHTS = _weights()


def norm_groups(sizes: list[int]) -> np.ndarray:
    """(G, 2) ``[start, stop)`` of consecutive parts of the given sizes (empty ones left out): the groups of a
    flattened state whose largest RMS is the small-circuit kernel's norm."""
    stops = np.cumsum(sizes)
    ranges = np.stack([stops - np.asarray(sizes), stops], axis=1)
    return np.ascontiguousarray(ranges[np.asarray(sizes) > 0], dtype=np.int64)


class StepError(Exception):
    """The solve could not go on; ``reason`` in torchdiffeq's words (``underflow``, ``max_num_steps``,
    ``non-finite``), ``time`` where the field was last evaluated (NaN after a NaN step), in the slice's own time."""

    def __init__(self, reason: str, time: float) -> None:
        super().__init__(reason)
        self.reason, self.time = reason, time


Activation = tuple[Tensor | None, Tensor | None]
"""σ(U) and σ'(U) of one evaluation, kept for its vector-Jacobian product (``None``: recomputed there; the numba
kernel keeps neither, and σ'(U) is computed only with the divergence)."""
Step = tuple[float, list[Tensor], list[Activation]]
"""An accepted step: its size, and the states and activations of stages 0..5 (stage 6 is the next step's stage 0
and enters no solution): what the discrete adjoint reverses through."""


class Dopri5(ABC):
    """torchdiffeq's dopri5 step control over one state tensor, for the rate and the norm a subclass gives.

    Args:
        span: the solve's start and end, in the solve's time dtype (end < start: backwards in time).
        rtol, atol, first_step, min_step, max_steps: the solver's step control.
        count: called with the number of field evaluations made.
    """

    def __init__(
        self,
        span: tuple[float, float],
        rtol: float,
        atol: float,
        first_step: float | None,
        min_step: float,
        max_steps: int,
        count: Callable[[int], None],
    ) -> None:
        # torchdiffeq integrates a backwards solve forwards in negated time, with the field negated.
        self.sign = 1.0 if span[1] >= span[0] else -1.0
        self.start, self.end = self.sign * span[0], self.sign * span[1]
        self.rtol, self.atol, self.first_step = rtol, atol, first_step
        self.min_step, self.max_steps, self.count = min_step, max_steps, count

    @abstractmethod
    def _rate(self, y: Tensor, out: Tensor) -> Any:
        """Writes the signed rate at ``y`` into ``out`` (same shape); returns what a backward pass keeps of it."""

    @abstractmethod
    def _norm(self, y: Tensor) -> Tensor:
        """The norm the step control measures states and errors with."""

    def _initial_step(self, y0: Tensor, f0: Tensor) -> tuple[float, float]:
        """torchdiffeq's ``_select_initial_step`` (Hairer, Nørsett & Wanner II.4) for order 5, and the trial step
        at whose end it evaluated the field once."""
        scale = self.atol + y0.abs() * self.rtol
        d0, d1 = self._norm(y0 / scale).abs(), self._norm(f0 / scale).abs()
        small = d0 < 1e-5 or d1 < 1e-5
        h0 = (torch.tensor(1e-6, dtype=y0.dtype, device=y0.device) if small else 0.01 * d0 / d1).abs()
        f1 = torch.empty_like(y0)
        self._rate(y0 + h0 * f0, f1)
        self.count(1)
        d2 = torch.abs(self._norm((f1 - f0) / scale) / h0)
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = torch.maximum(torch.tensor(1e-6, dtype=y0.dtype, device=y0.device), h0 * 1e-3)
        else:
            h1 = (0.01 / torch.maximum(d1, d2)) ** (1.0 / ORDER)
        return float(torch.minimum(100 * h0, h1.abs()).to(torch.float64)), float(h0)

    def _next_step(self, dt: float, ratio: float) -> float:
        """torchdiffeq's ``_optimal_step_size`` for order 5, then its clamp to ``min_step``."""
        if ratio == 0:
            size = dt * GROWTH
        else:
            factor = SAFETY / ratio ** (1.0 / ORDER)
            floor = 1.0 if ratio < 1 else SHRINK
            size = math.nan if math.isnan(factor) else dt * min(GROWTH, max(factor, floor))
        return size if math.isnan(size) else max(size, self.min_step)

    def _attempt(
        self, y: Tensor, activation: Activation, table: Tensor, rates: Tensor, shape: torch.Size
    ) -> tuple[list[Tensor], list[Activation], float, bool]:
        """A trial step from ``y`` (flattened; its rate, with ``activation``, in ``rates[0]``) with the tableau
        ``table`` times the step size: the stages' states (the last is the solution) and activations, their rates
        into ``rates``, the error ratio under `_norm` and whether the solution is finite."""
        states, activations = [y.view(shape)], [activation]
        for i in range(1, STAGES):
            stage = torch.addmv(y, rates[:i].T, table[i - 1, :i])
            states.append(stage.view(shape))
            activations.append(self._rate(stage.view(shape), rates[i].view(shape)))
        y1 = states[-1].reshape(-1)
        error = table[-1] @ rates
        tolerance = self.atol + self.rtol * torch.maximum(y.abs(), y1.abs())
        ratio_t = self._norm((error / tolerance).view(shape)).abs()
        ratio, finite = torch.stack([ratio_t.double(), y1.isfinite().all().double()]).tolist()
        return states, activations, ratio, bool(finite)

    def solve(self, y0: Tensor, keep: bool) -> tuple[Tensor, list[Step]]:
        """The state at the slice end and, with ``keep``, what the backward pass needs.

        Raises:
            StepError: the step size underflowed, the state became non-finite, or more than ``max_steps``
                steps were tried.
        """
        shape, width = y0.shape, y0.numel()
        weights = _WEIGHTS.to(device=y0.device, dtype=y0.dtype)
        rates = y0.new_empty(STAGES, width)  # the stages' signed rates k_0..k_6, one row each
        y = y0.reshape(width)
        activation = self._rate(y0, rates[0].view(shape))
        self.count(1)
        t, reached, finite, tries = self.start, self.start, True, 0  # reached: where the field was last evaluated
        if self.first_step is None:
            dt, trial = self._initial_step(y0, rates[0].view(shape))
            reached = t + trial
        else:
            dt = self.first_step
        steps: list[Step] = []
        while self.end > t:
            if tries >= self.max_steps:
                raise StepError(f"max_num_steps exceeded ({tries}>={self.max_steps})", self.sign * reached)
            tries += 1
            if not math.isfinite(dt):
                dt = self.min_step
            dt = max(dt, self.min_step)
            if not t + dt > t:
                raise StepError(f"underflow in dt {dt}", self.sign * reached)
            if not finite:
                raise StepError("non-finite values in state `y`", self.sign * reached)
            t1 = t + dt
            if t < self.end < t1:  # land on the slice end
                t1 = self.end
                dt = t1 - t
            states, activations, ratio, finite_step = self._attempt(y, activation, weights * dt, rates, shape)
            self.count(STAGES - 1)
            reached = t1
            if ratio <= 1 or dt <= self.min_step:
                if keep:
                    steps.append((dt, states[:-1], activations[:-1]))
                # first same as last: stage 6 is evaluated at the solution
                y, activation, t, finite = states[-1].reshape(width), activations[-1], t1, finite_step
                rates[0].copy_(rates[-1])
            dt = self._next_step(dt, ratio)
        return y.view(shape), steps


class FusedProblem(Dopri5):
    """One slice's solve: its field with fixed coefficients, the step control, the direction of time.

    Args:
        system: the slice's closed-form field and vector-Jacobian product.
        divergence: the state's last row is log p, whose rate is −tr(∂f/∂v).
        control: `Dopri5`'s arguments (the span, the step control, the evaluation count).
    """

    def __init__(self, system: WholeAffine, divergence: bool, **control: Any) -> None:
        super().__init__(**control)
        self.system, self.divergence = system, divergence
        self._groups: np.ndarray | None = None

    def _rate(self, y: Tensor, out: Tensor) -> Activation:
        """Writes the signed field at ``y`` into ``out`` (same shape); returns the evaluation's activation.

        σ'(U) is kept beside σ(U): the backward pass would otherwise spend one more pass over an (edges × batch)
        block recomputing it, which timed slower than reading the kept one on the twomoon circuit."""
        state = y[:-1] if self.divergence else y
        rate, trace, current, slope = self.system.field(state, self.divergence)
        if not self.divergence:
            out.copy_(rate)
            if self.sign < 0:
                out.neg_()
            return current, slope
        torch.cat([rate, trace.unsqueeze(0)], out=out)  # (f, tr); the solve's rate is sign·(f, −tr)
        (out[-1] if self.sign > 0 else out[:-1]).neg_()
        return current, slope

    def _attempt(
        self, y: Tensor, activation: Activation, table: Tensor, rates: Tensor, shape: torch.Size
    ) -> tuple[list[Tensor], list[Activation], float, bool]:
        """On the small-circuit kernel, the whole trial step in one call (`SmallKcl.rk_field`, the same stages and
        norm); the torch stages elsewhere."""
        small = self.system.small
        if small is None:
            return super()._attempt(y, activation, table, rates, shape)
        if self._groups is None:  # the norm's parts: the voltages, and the log-density row apart
            self._groups = norm_groups([shape.numel() - shape[1], shape[1]] if self.divergence else [shape.numel()])
        states = rates.new_empty(rates.shape)  # a fresh block: a kept step holds its states
        ratio, finite = small.rk_field(
            y, table, rates, states, self.divergence, self.sign, (self.rtol, self.atol, self._groups)
        )
        return list(states.view(STAGES, *shape).unbind(0)), [(None, None)] * STAGES, ratio, finite

    def _norm(self, y: Tensor) -> Tensor:
        """torchdiffeq's RMS norm; with the log-density row, the larger RMS of voltages and log p (the norm of
        the tuple (v, log p) that the torchdiffeq solve uses, `_split_norm`)."""
        if not self.divergence:
            return y.pow(2).mean().sqrt()
        return torch.maximum(y[:-1].pow(2).mean().sqrt(), y[-1].pow(2).mean().sqrt())

    def backward(self, steps: list[Step], grad_y: Tensor, need_post: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """The discrete adjoint through ``steps``: gradients of the end state's cotangent ``grad_y`` with respect
        to the initial state, the coefficient rows (E, 3) and ``post`` (E,) (``None`` unless ``need_post``)."""
        shape, width = grad_y.shape, grad_y.numel()
        weights = _WEIGHTS.to(device=grad_y.device, dtype=grad_y.dtype)
        lam = grad_y.reshape(width).clone()
        grad_coeffs = grad_y.new_zeros(self.system.coeffs.shape)
        grad_post = grad_y.new_zeros(self.system.coeffs.shape[0]) if need_post else None
        stage_grads = grad_y.new_empty(STAGES - 1, width)
        for dt, states, activations in reversed(steps):
            table = weights * dt
            torch.outer(table[STAGES - 2, : STAGES - 1], lam, out=stage_grads)  # y1 = y0 + Σ b_i k_i
            for i in range(STAGES - 2, -1, -1):
                grad_state = self._pullback(
                    states[i], activations[i], stage_grads[i].view(shape), grad_coeffs, grad_post
                )
                lam += grad_state
                if i > 0:  # stage i's state is y0 + Σ_{j<i} a_ij k_j
                    stage_grads[:i].addr_(table[i - 1, :i], grad_state)
        return lam.view(shape), grad_coeffs, grad_post

    def _pullback(
        self, y: Tensor, activation: Activation, grad_rate: Tensor, grad_coeffs: Tensor, grad_post: Tensor | None
    ) -> Tensor:
        """The cotangent of a stage's state (flattened) for the cotangent ``grad_rate`` of its signed rate;
        adds the coefficients' (and ``post``'s) into the accumulators."""
        grad_f = grad_rate * self.sign
        if self.divergence:
            state, grad_out, grad_trace = y[:-1], grad_f[:-1], grad_f[-1].neg()  # the rate's last row is −tr
        else:
            state, grad_out, grad_trace = y, grad_f, None
        grad_state, coeffs, post = self.system.vjp(
            state, *activation, grad_out, grad_trace, need_post=grad_post is not None
        )
        assert grad_state is not None  # need_state defaults to True
        grad_coeffs += coeffs
        if grad_post is not None and post is not None:
            grad_post += post
        if self.divergence:
            grad_state = torch.cat([grad_state, grad_state.new_zeros(1, grad_state.shape[1])])
        return grad_state.reshape(-1)


class _FusedSolve(torch.autograd.Function):
    """The solve without a graph; backward is `FusedProblem.backward`. Gradients flow to the initial state
    and to the coefficient rows and ``post`` that autograd derived from the parameters."""

    @staticmethod
    def forward(ctx: Any, y0: Tensor, coeffs: Tensor, post: Tensor | None, problem: FusedProblem) -> Tensor:
        y1, steps = problem.solve(y0, keep=True)
        ctx.problem, ctx.steps = problem, steps
        return y1

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        problem: FusedProblem = ctx.problem
        grad_y0, grad_coeffs, grad_post = problem.backward(ctx.steps, grad_y.contiguous(), ctx.needs_input_grad[2])
        return grad_y0, grad_coeffs, grad_post, None


def fused_solve(problem: FusedProblem, y0: Tensor, coeffs: Tensor, post: Tensor | None) -> Tensor:
    """The state at the slice end, differentiable in ``y0``, ``coeffs`` and ``post`` where autograd records
    (``coeffs``/``post``: the ones ``problem.system`` holds the values of)."""
    inputs = [y0, coeffs] + ([] if post is None else [post])
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        return _FusedSolve.apply(y0, coeffs, post, problem)
    with torch.no_grad():
        return problem.solve(y0, keep=False)[0]

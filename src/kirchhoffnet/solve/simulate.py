"""Integrating a circuit slice by slice (or any torch field, `solve_field`) with torchdiffeq, counting evaluations
and catching blow-ups."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint

from kirchhoffnet.circuit import Circuit, Slice
from kirchhoffnet.circuit._affine import WholeAffine
from kirchhoffnet.circuit._kcl import KclKernel, records
from kirchhoffnet.devices import AffineActivation
from kirchhoffnet.errors import ConfigError, SolverError
from kirchhoffnet.runtime import require_memory
from kirchhoffnet.solve._adjoint import analytic_adjoint
from kirchhoffnet.solve._fused_rk import FusedProblem, StepError, fused_solve
from kirchhoffnet.solve._traced import TABLEAUX, traceable, traced_simulate
from kirchhoffnet.solve.gradient import DEFAULT_GRADIENT, Adjoint, Backprop, GradientMethod, check_gradient
from kirchhoffnet.solve.solver import FUSED_METHODS, Solver, check_time_grid, resolve_solver


@dataclass
class _Counter:
    calls: int = 0
    last_t: Tensor | None = None
    paths: list[str] = field(default_factory=list)  # the kernel paths the slice's evaluations took

    def tick(self, t: Tensor) -> None:
        self.calls += 1
        self.last_t = t.detach()

    def took(self, path: str) -> None:
        if path not in self.paths:
            self.paths.append(path)

    def add(self, calls: int) -> None:
        """Evaluations made by the fused integrator, which keeps its times as floats."""
        self.calls += calls

    def tick_adjoint(self, t: Tensor) -> None:
        """An evaluation of the analytic adjoint's dynamics (closed-form products, no autograd)."""
        self.tick(t)
        self.took("closed-form adjoint")


@dataclass
class SolveStats:
    """What a solve cost.

    Attributes:
        nfe: right-hand-side evaluations per slice during the forward solve.
        wall_time_s: wall-clock seconds of the forward solve.
    """

    nfe: list[int]
    wall_time_s: float
    _counters: list[_Counter] = field(repr=False, default_factory=list)

    @property
    def nfe_backward(self) -> list[int]:
        """Evaluations per slice made after the forward solve, i.e. by a backward pass (adjoint)."""
        return [c.calls - n for c, n in zip(self._counters, self.nfe, strict=True)]

    @property
    def total_nfe(self) -> int:
        return sum(c.calls for c in self._counters)

    @property
    def kernels(self) -> list[list[str]]:
        """The KCL kernel paths each slice's evaluations took (``gather``, ``affine``, ``affine-vjp``, ``fused``;
        ``closed-form adjoint`` for the analytic adjoint's backward solve, ``fused-rk`` where the fused integrator
        ran the slice, ``traced`` for the solve of an exported or compiled module), in the order first taken;
        a backward pass run after the solve adds its own."""
        return [list(c.paths) for c in self._counters]

    def to_dict(self) -> dict[str, Any]:
        return {
            "nfe": self.nfe,
            "nfe_backward": self.nfe_backward,
            "wall_time_s": self.wall_time_s,
            "kernels": self.kernels,
        }


class _SliceField(nn.Module):
    """torchdiffeq vector field of one slice on the node-major state, optionally with −tr(∂f/∂v).

    With the divergence, the state is one (N + 1, B) tensor whose last row is log p: one tensor
    instead of a tuple spares torchdiffeq's per-evaluation packing, and `_split_norm` keeps
    its step-size control exactly that of the tuple (v, log p).
    """

    def __init__(
        self, piece: Slice, evaluator: KclKernel, divergence: bool, counter: _Counter, kernel: str, backprop: bool
    ) -> None:
        super().__init__()
        self.piece = piece
        # Looked up once per slice solve: `Slice.kernel` compares the capacitance at every call, a host
        # sync per evaluation on a GPU, and nothing changes the capacitance during a solve.
        self.evaluator = evaluator
        # After its first evaluation without autograd, the solve's parameters are those the kernel's cached
        # operators were checked against: later evaluations skip the comparison (a host sync on a GPU).
        self._checked = False
        self.divergence = divergence
        self.counter = counter
        self.kernel = kernel
        self._paths: dict[bool, str] = {}  # autograd on / off: the path depends on nothing else in a solve
        # Backprop through the solve: the closed-form node's coefficients are recorded once, so that a clamp
        # passing only the gradient that leads back inside decides on the sum over all evaluations, not on each
        # one (`clamp_inward`). Not under torchdiffeq's adjoint, which frees each evaluation's graph.
        self.backprop = backprop
        self._coefficients: tuple[Tensor, Tensor | None] | None = None

    def forward(self, t: Tensor, y: Any) -> Any:
        self.counter.tick(t)
        piece = self.piece
        track = records(y, piece.params)
        if track not in self._paths:
            self._paths[track] = self.evaluator.path(piece.device_family, self.kernel, track)
            self.counter.took(self._paths[track])
        params = piece.params.to(y.dtype)
        unchanged = self._checked and not track
        self._checked = self._checked or not track
        device, coefficients = piece.device_family, None
        if self.backprop and self._paths[track] == "affine-vjp":  # the one path that takes them
            if self._coefficients is None:
                assert isinstance(device, AffineActivation)  # the path's condition
                self._coefficients = self.evaluator.affine_coefficients(device, params)
            coefficients = self._coefficients
        state = y[:-1] if self.divergence else y
        dv, trace = self.evaluator.evaluate(
            device, params, state, self.divergence, self.kernel, unchanged, coefficients
        )
        if not self.divergence:
            return dv
        assert trace is not None  # asked for
        return torch.cat([dv, trace.neg().unsqueeze(0)])  # d(log p)/dt = −tr(∂f/∂v)


def _split_norm(y: Tensor) -> Tensor:
    """torchdiffeq's mixed norm of the tuple (v, log p) on their stacked (N + 1, B) form."""
    return torch.maximum(y[:-1].pow(2).mean().sqrt(), y[-1].pow(2).mean().sqrt())


def _solve_slice(
    piece: Slice,
    k: int,
    y0: Tensor,
    span: tuple[float, float],
    solver: Solver,
    gradient: GradientMethod,
    divergence: bool,
    counter: _Counter,
    points: int,
) -> Any:
    # The grid lives with the state: one built on the host would be copied to the device at every solve.
    time_dtype = torch.float64 if y0.dtype == torch.float64 else torch.float32
    t = torch.linspace(span[0], span[1], points, dtype=time_dtype, device=y0.device)
    evaluator = piece.kernel(y0.dtype, y0.device)
    field = _SliceField(piece, evaluator, divergence, counter, solver.kernel, isinstance(gradient, Backprop))
    kwargs = _odeint_kwargs(solver, t, span)
    if divergence and solver.adaptive:
        kwargs["options"]["norm"] = _split_norm
    try:
        fused = _fused_applies(piece, evaluator, solver, points, k)
        if isinstance(gradient, Backprop) or not torch.is_grad_enabled():  # no backward pass can follow
            if fused:
                return torch.stack([y0, _fused(piece, evaluator, y0, t, solver, divergence, counter)])
            return odeint(field, y0, t, **kwargs)
        adjoint_options = _adjoint_options(gradient, solver, t)
        if evaluator.closed_form_adjoint(piece.device_family, solver.kernel):
            if fused:  # both solves stepped by the fused integrator, the backward one with the closed-form products
                forward = evaluator.path(piece.device_family, solver.kernel, track=False)
                for path in (forward, "fused-rk", "closed-form adjoint"):
                    counter.took(path)
            steps = counter.add if fused else None
            return analytic_adjoint(
                piece, field, divergence, y0, t, kwargs, adjoint_options, counter.tick_adjoint, solver.kernel, steps
            )
        if solver.adaptive and span[1] < span[0]:  # odeint_adjoint solves backwards in its negated time
            adjoint_options["step_t"] = -adjoint_options["step_t"]
        return odeint_adjoint(
            field, y0, t, adjoint_params=tuple(piece.parameters()), adjoint_options=adjoint_options, **kwargs
        )
    except AssertionError as exc:  # torchdiffeq reports failures with assert (often without a message)
        raise _solver_error(f"slice {k}", span, counter, str(exc), solver, y0.dtype) from None
    except StepError as exc:
        counter.last_t = torch.tensor(exc.time)
        raise _solver_error(f"slice {k}", span, counter, exc.reason, solver, y0.dtype) from None


def _fused_applies(piece: Slice, evaluator: KclKernel, solver: Solver, points: int, k: int) -> bool:
    """Whether the fused integrator runs this slice's solve (see [`Solver`][kirchhoffnet.Solver]'s ``integrator``).

    Raises:
        ConfigError: ``integrator="fused"`` on a slice whose field has no closed-form vector-Jacobian product.
    """
    if solver.integrator == "torchdiffeq" or solver.method not in FUSED_METHODS or points != 2:
        return False
    if evaluator.closed_form_adjoint(piece.device_family, solver.kernel):
        return True
    if solver.integrator == "fused":
        raise ConfigError(
            f"integrator 'fused' needs a closed-form vector-Jacobian product, which slice {k} "
            f"({piece.device_family.name}, kernel {solver.kernel!r}) has not: it needs an affine-activation device "
            "family and kernel 'auto', 'affine' or 'fused'; use integrator 'auto' or 'torchdiffeq'"
        )
    return False


def _fused(
    piece: Slice, evaluator: KclKernel, y0: Tensor, t: Tensor, solver: Solver, divergence: bool, counter: _Counter
) -> Tensor:
    """The slice's state at its end, from the fused integrator (`kirchhoffnet.solve._fused_rk`)."""
    device = piece.device_family
    assert isinstance(device, AffineActivation)  # closed_form_adjoint holds
    counter.took(evaluator.path(device, solver.kernel, track=False))
    counter.took("fused-rk")
    coeffs, post = evaluator.affine_coefficients(device, piece.params.to(y0.dtype))
    system = WholeAffine(evaluator, device, coeffs, post, evaluator.fused_for(device, solver.kernel))
    span = (float(t[0]), float(t[-1]))  # the slice's ends in the solve's time dtype, as torchdiffeq sees them
    control = {"rtol": solver.rtol, "atol": solver.atol, "first_step": solver.first_step, "min_step": solver.min_step}
    problem = FusedProblem(system, divergence, span=span, max_steps=int(solver.max_steps), count=counter.add, **control)
    return fused_solve(problem, y0, coeffs, post)


_CIRCUIT_ADVICE = (
    "The circuit is stiff or its voltages blow up; try a fixed-step method with a small step_size, "
    "looser rtol/atol, smaller device gains, or check the inputs for NaN/inf"
)


def _odeint_kwargs(solver: Solver, t: Tensor, span: tuple[float, float]) -> dict[str, Any]:
    """torchdiffeq's keyword arguments for a solve over the grid ``t`` (``span`` as numbers: reading ``t`` would
    wait for its device) under ``solver``."""
    kwargs: dict[str, Any] = {"rtol": solver.rtol, "atol": solver.atol, "method": solver.method}
    kwargs["options"] = solver.options()
    length = abs(span[1] - span[0])
    if not solver.adaptive and kwargs["options"]["step_size"] > length:
        kwargs["options"]["step_size"] = length  # one step; torchdiffeq's grid would miss the end
    if solver.adaptive:
        # Land a step on each end: otherwise the end value is the method's interpolant over a
        # step that overshoots it (dopri8's is low order: 100-1000x the tolerance).
        kwargs["options"]["step_t"] = t[[0, -1]]
    return kwargs


def _adjoint_options(gradient: Adjoint, solver: Solver, t: Tensor) -> dict[str, Any]:
    """``odeint_adjoint``'s ``adjoint_options``: the backward solve also lands on the ends."""
    options = gradient.options(solver)
    if solver.adaptive:
        options["step_t"] = t[[0, -1]]
    return options


def solve_field(
    field: nn.Module,
    y0: Tensor,
    span: tuple[float, float],
    solver: Solver,
    gradient: GradientMethod = DEFAULT_GRADIENT,
    what: str = "the ODE",
) -> tuple[Tensor, SolveStats]:
    """The state at ``span[1]`` of dy/dt = ``field(t, y)`` from ``y0`` at ``span[0]``: any torch module as the
    field (a digital baseline's, such as an ODE-Net block), stepped by torchdiffeq under ``solver``'s method and
    tolerances, differentiated by ``gradient`` (``odeint_adjoint`` over the field's parameters for
    [`Adjoint`][kirchhoffnet.solve.Adjoint]), its evaluations counted as a circuit slice's are. ``solver.kernel``
    and ``solver.integrator`` concern circuits and are not used.

    Raises:
        SolverError: step-size underflow, too many steps or a non-finite end state, naming ``what`` and the time.
    """
    check_time_grid(span, solver, y0.dtype if y0.dtype == torch.float64 else torch.float32)
    counter = _Counter()
    counted = _CountedField(field, counter)
    t = torch.tensor(span, dtype=torch.float64 if y0.dtype == torch.float64 else torch.float32, device=y0.device)
    kwargs = _odeint_kwargs(solver, t, span)
    advice = "try looser rtol/atol, a fixed-step method, a lower learning rate, or check the inputs for NaN/inf"
    start = time.perf_counter()
    try:
        if isinstance(gradient, Backprop) or not torch.is_grad_enabled():
            ys = odeint(counted, y0, t, **kwargs)
        else:
            options = _adjoint_options(gradient, solver, t)
            ys = odeint_adjoint(
                counted, y0, t, adjoint_params=tuple(field.parameters()), adjoint_options=options, **kwargs
            )
    except AssertionError as exc:
        raise _solver_error(what, span, counter, str(exc), solver, y0.dtype, advice) from None
    if not bool(torch.isfinite(ys[-1]).all()):
        raise SolverError(f"{what} (t from {span[0]:g} to {span[1]:g}) ended with NaN or infinite values; {advice}")
    return ys[-1], SolveStats([counter.calls], time.perf_counter() - start, [counter])


class _CountedField(nn.Module):
    """A field whose evaluations (forward solve and adjoint alike) tick a counter."""

    def __init__(self, field: nn.Module, counter: _Counter) -> None:
        super().__init__()
        self.field = field
        self.counter = counter

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.counter.tick(t)
        return self.field(t, y)


def _solver_error(
    where: str,
    span: tuple[float, float],
    counter: _Counter,
    reason: str,
    solver: Solver,
    dtype: torch.dtype,
    advice: str = _CIRCUIT_ADVICE,
) -> SolverError:
    reached = float(counter.last_t) if counter.last_t is not None else span[0]
    nan_step = not math.isfinite(reached)  # a NaN state makes a NaN step size: the last time is NaN too
    if nan_step:
        reached = span[0]
    eps = torch.finfo(dtype).eps
    if "underflow" in reason and solver.adaptive and max(solver.rtol, solver.atol) < eps:
        # no error estimate in this dtype gets below its rounding: the step shrinks until it is nothing
        name = str(dtype).removeprefix("torch.")
        what = (
            f"the step size underflowed: rtol {solver.rtol:g} and atol {solver.atol:g} are below {name}'s resolution "
            f"({eps:.1e}), which no step can meet"
        )
        advice = f"Loosen them to at least {eps:.0e} or compute in float64"
    elif "underflow" in reason and nan_step:
        what = "the voltages or the step size became NaN (NaN parameters?)"
    elif "underflow" in reason:
        what = "the step size underflowed"
    elif "max_num_steps" in reason:
        what = f"it needed more than max_steps={solver.max_steps} steps"
    elif "non-finite" in reason:
        what = "the voltages became NaN or infinite"
    else:
        lines = reason.strip().splitlines()
        what = f"torchdiffeq's check failed ({lines[0][:200]})" if lines else "torchdiffeq's internal check failed"
    return SolverError(f"{where} (t from {span[0]:g} to {span[1]:g}) failed at t = {reached:.6g}: {what}. {advice}")


def _check_finite(ends: list[tuple[Tensor, int, tuple[float, float]]]) -> None:
    """Raise for the first slice end ``(finite, k, span)`` whose on-device flag ``finite`` is false: one host
    sync for all of them."""
    if not ends:
        return
    flags = torch.stack([finite for finite, _, _ in ends]).tolist()
    for ok, (_, k, span) in zip(flags, ends, strict=True):
        if not ok:
            raise SolverError(
                f"slice {k} (t from {span[0]:g} to {span[1]:g}) reached t = {span[1]:g} with NaN or infinite "
                "voltages; the circuit blows up: reduce device gains or the slice duration, or check the inputs"
            )


def _check_input(x: Tensor, values: bool = True) -> None:
    """Refuse inputs that are not floating-point tensors and, with ``values``, inputs holding NaN or inf
    (a check of the data, which a traced graph cannot make)."""
    if not isinstance(x, Tensor):
        raise ConfigError(f"inputs must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ConfigError(f"inputs must be floating point voltages, got dtype {x.dtype}")
    if values and not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x)).nonzero()[0].tolist()
        raise ConfigError(f"inputs hold NaN or infinite values (first at index {bad})")


_slice_ends: ContextVar[tuple[list[Tensor], int] | None] = ContextVar("kirchhoffnet_slice_ends", default=None)


@contextmanager
def recording_slice_ends(points: int = 2) -> Iterator[list[Tensor]]:
    """Collect the (P, N_k, B) voltages of every solve made inside the block at ``points`` evenly spaced times
    per slice, ends included, in their graphs.

    The training rails penalty reads a model's node voltages this way, so that no model keeps tensors
    holding a graph between calls (which would break ``copy.deepcopy`` and retain memory), and a user's
    own module holding circuits is covered as well as [`Flow`][kirchhoffnet.Flow] and
    [`Network`][kirchhoffnet.Network]. ``points`` > 2 also sees the transient between the slice's ends
    (a node can leave the rails mid-slice and return by its end); an adaptive solver interpolates them
    from its accepted steps, at no extra field evaluation. A solve that asks for its own trajectory
    records that trajectory's points instead.
    """
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ConfigError(f"recording_slice_ends: points must be an integer >= 2 (the slice's ends), got {points!r}")
    ends: list[Tensor] = []
    token = _slice_ends.set((ends, points))
    try:
        yield ends
    finally:
        _slice_ends.reset(token)


def _also_recording(
    on_slice: Callable[[int, Tensor, Any], None] | None, recorded: list[Tensor]
) -> Callable[[int, Tensor, Any], None]:
    def hook(k: int, t: Tensor, v: Any) -> None:
        recorded.append(v)
        if on_slice is not None:
            on_slice(k, t, v)

    return hook


def _integrate(
    circuit: Circuit,
    x: Tensor,
    solver: Solver | str | dict[str, Any] | None,
    gradient: GradientMethod,
    reverse: bool,
    divergence: bool,
    points: int = 2,
    on_slice: Callable[[int, Tensor, Any], None] | None = None,
) -> tuple[Tensor, Tensor | None, SolveStats]:
    solver = resolve_solver(solver)
    gradient = check_gradient(gradient)
    if torch.compiler.is_compiling():  # a traced solve records no slice ends: it stays one graph
        beyond_forward = reverse or divergence or points != 2 or on_slice is not None
        traced = _traced_integrate(circuit, x, solver, gradient, beyond_forward)
        if traced is not None:
            return traced
    else:
        recording = _slice_ends.get()
        if recording is not None:
            recorded, wanted = recording
            if points == 2 and on_slice is None:  # a plain forward solve: its output is the slice end either way
                points = wanted
            on_slice = _also_recording(on_slice, recorded)
    return _eager_integrate(circuit, x, solver, gradient, reverse, divergence, points, on_slice)


def _traced_integrate(
    circuit: Circuit, x: Tensor, solver: Solver, gradient: GradientMethod, beyond_forward: bool
) -> tuple[Tensor, None, SolveStats] | None:
    """The traced solve (`kirchhoffnet.solve._traced`) while a module is exported or compiled, where it
    applies; where it does not, ``None`` under ``torch.compile`` (which then runs the eager solve, outside
    the graph) and a [`ConfigError`][kirchhoffnet.errors.ConfigError] under ``torch.export`` (which has no eager to fall
    back on). ``beyond_forward``: the solve is reversed, carries the log-density or keeps a trajectory."""
    exporting = torch.compiler.is_exporting()
    why = traceable(solver)
    if why is None and beyond_forward:
        why = "only the forward solve of simulate / kn.Network is traced (no reverse, log-density or trajectory)"
    if why is None and isinstance(gradient, Adjoint) and torch.is_grad_enabled() and not exporting:
        why = "the adjoint's backward solve is not traced (the traced solve backpropagates)"
    if why is not None:
        if exporting:
            raise ConfigError(
                f"cannot export this solve: {why}; export a fixed-step solve ({', '.join(TABLEAUX)} "
                "with a step_size) of kn.simulate or kn.Network"
            )
        return None
    _check_input(x, values=False)
    check_time_grid(circuit.times, solver, x.dtype if x.dtype == torch.float64 else torch.float32)
    v, nfe = traced_simulate(circuit, x, solver)
    counters = [_Counter(calls=n, paths=["traced"]) for n in nfe]
    return v, None, SolveStats(nfe, 0.0, counters)


@torch.compiler.disable
def _eager_integrate(
    circuit: Circuit,
    x: Tensor,
    solver: Solver,
    gradient: GradientMethod,
    reverse: bool,
    divergence: bool,
    points: int,
    on_slice: Callable[[int, Tensor, Any], None] | None,
) -> tuple[Tensor, Tensor | None, SolveStats]:
    """The solve of [`simulate`][kirchhoffnet.solve.simulate.simulate] and its relatives: torchdiffeq slice by slice,
    every slice's end checked for NaN. ``torch.compile`` runs it outside the graph: its host checks, counters and kernel
    caches would otherwise break the graph at every step."""
    _check_input(x)
    check_time_grid(circuit.times, solver, x.dtype if x.dtype == torch.float64 else torch.float32)
    if solver.adaptive and x.dim() > 0 and x.shape[0] == 0:
        # An empty batch has no error to control (its norm is NaN, which read as a failed step): one step per
        # slice gives the empty result in its shapes, as a fixed-step solve always did.
        solver = Solver("euler", step_size=max(b - a for a, b in itertools.pairwise(circuit.times)))
    if reverse:
        if len(set(circuit.widths)) != 1 or circuit.residual is not None:
            raise ConfigError("reverse-time integration needs every slice to have the same node count and no residual")
        if x.dim() != 2 or x.shape[1] != circuit.slice(0).num_state:
            raise ConfigError(
                f"reverse-time inputs must be (batch, {circuit.slice(0).num_state}), got shape {tuple(x.shape)}"
            )
        state = circuit.encoding.encode(x).T.contiguous()
    else:
        state = circuit.input_state(x)
    order = range(circuit.num_slices - 1, -1, -1) if reverse else range(circuit.num_slices)
    counters = [_Counter() for _ in range(circuit.num_slices)]
    log_det = state.new_zeros(state.shape[1]) if divergence else None
    saved: Tensor | None = None
    # Each slice end's finiteness stays on the device until the solve ends: a fixed-step solve then syncs
    # with the host once. An adaptive solve syncs at every step anyway, and a NaN state must not reach the
    # next slice's step control (whose error would name the wrong cause), so its ends are checked at once.
    pending: list[tuple[Tensor, int, tuple[float, float]]] = []
    start = time.perf_counter()
    for k in order:
        piece = circuit.slice(k)
        span = (circuit.times[k + 1], circuit.times[k]) if reverse else (circuit.times[k], circuit.times[k + 1])
        state = circuit.resize(state, piece.num_state)
        y0 = torch.cat([state, log_det.unsqueeze(0)]) if log_det is not None else state
        ys = _solve_slice(piece, k, y0, span, solver, gradient, divergence, counters[k], points)
        if on_slice is not None:  # voltages only, without the log-density row
            on_slice(k, torch.linspace(span[0], span[1], points, dtype=torch.float64), ys[:, :-1] if divergence else ys)
        if log_det is not None:
            state, log_det = ys[-1, :-1], ys[-1, -1]
        else:
            state = ys[-1]
        pending.append((torch.isfinite(state).all(), k, span))
        if solver.adaptive:
            _check_finite(pending)
            pending = []
        if circuit.residual is not None:
            if k == circuit.residual[0]:
                saved = state
            if k == circuit.residual[1]:
                state = state + saved
    _check_finite(pending)
    stats = SolveStats([c.calls for c in counters], time.perf_counter() - start, counters)
    if log_det is not None and not reverse:
        log_det = -log_det  # forward integration accumulated −∫tr; report ∫tr either way
    # Encoded at both ends, the map data → data has the Jacobian of volts → volts: ∫tr needs no log-det term.
    return circuit.encoding.decode(state.T), log_det, stats


def simulate(
    circuit: Circuit,
    x: Tensor,
    *,
    solver: Solver | str | dict[str, Any] | None = None,
    gradient: GradientMethod = DEFAULT_GRADIENT,
    reverse: bool = False,
) -> tuple[Tensor, SolveStats]:
    """Run the circuit: inputs as initial voltages, outputs as the voltages at the last time.

    Args:
        circuit: the circuit to integrate.
        x: (B, d) inputs, encoded into volts by ``circuit.encoding`` (the identity by default) and placed on the
            first slice's input nodes (others per ``fill``).
        solver: a [`Solver`][kirchhoffnet.solve.Solver], a method name or a settings dict; default dopri5 at 1e-4.
        gradient: [`Backprop`][kirchhoffnet.solve.Backprop] (through the solver's steps; the default everywhere, see
            `kirchhoffnet.solve.gradient`) or `Adjoint` (memory independent of the steps).
        reverse: integrate from the last time back to the first (flows' inverse).

    Returns:
        ``(v, stats)``: (B, N) voltages of the last slice's state nodes, decoded by ``circuit.encoding``, and
        [`SolveStats`][kirchhoffnet.solve.SolveStats].

    Raises:
        SolverError: step-size underflow, too many steps, or NaN/inf voltages, naming the slice
            and the time reached.
    """
    v, _, stats = _integrate(circuit, x, solver, gradient, reverse, divergence=False)
    return v, stats


def simulate_log_density(
    circuit: Circuit,
    x: Tensor,
    *,
    solver: Solver | str | dict[str, Any] | None = None,
    gradient: GradientMethod = DEFAULT_GRADIENT,
    reverse: bool = False,
) -> tuple[Tensor, Tensor, SolveStats]:
    """Integrate the voltages together with the exact divergence (the CNF change of variables).

    Arguments as [`simulate`][kirchhoffnet.solve.simulate.simulate].

    Returns:
        ``(v, trace_integral, stats)`` where ``trace_integral`` (B,) is ∫ tr(∂f/∂v) dt over the
        circuit's whole time span along the path, so ``log p_T(v_T) = log p_0(v_0) − trace_integral``
        whichever way the path was integrated.
    """
    v, log_det, stats = _integrate(circuit, x, solver, gradient, reverse, divergence=True)
    return v, log_det, stats  # type: ignore[return-value]


MAX_TRAJECTORY_POINTS = 1_000_000
"""Most time points a trajectory keeps per slice: torchdiffeq reaches each in a Python step of its own, so a
billion of them is a run that does not end (a SPICE .tran prints a few thousand)."""
POINT_OVERHEAD = 512  # bytes per kept point and slice beyond its voltages: 1e6 points of one sample took 556 MB


def _check_trajectory(circuit: Circuit, x: Tensor, points: int) -> None:
    """Refuse a trajectory that cannot be kept, before solving: more points than `MAX_TRAJECTORY_POINTS`, points
    closer than the solve's time dtype tells apart (torchdiffeq then fails an assert), or voltages past memory."""
    if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= MAX_TRAJECTORY_POINTS:
        raise ConfigError(f"points_per_slice must be an integer from 2 to {MAX_TRAJECTORY_POINTS:,}, got {points!r}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    eps = torch.finfo(dtype).eps
    for k, (start, end) in enumerate(itertools.pairwise(circuit.times)):
        scale = max(abs(start), abs(end))
        if abs(end - start) / (points - 1) <= 4 * eps * scale:
            raise ConfigError(
                f"points_per_slice: {points:,} points over slice {k} (t from {start:g} to {end:g}) are closer than "
                f"{str(dtype).removeprefix('torch.')} tells apart (floats near {scale:g} are {eps * scale:.3g} apart); "
                "use fewer points or float64"
            )
    batch = x.shape[0] if x.dim() == 2 else 1
    nodes = sum(circuit.widths)
    require_memory(
        float(points) * (batch * nodes * x.element_size() + POINT_OVERHEAD * circuit.num_slices),
        "points_per_slice",
        "trajectory",
        f"({points:,} points per slice × {batch:,} inputs × {nodes:,} nodes over the slices, and a tensor per point "
        "and slice); use fewer points or inputs",
    )


def trajectory(
    circuit: Circuit,
    x: Tensor,
    *,
    solver: Solver | str | dict[str, Any] | None = None,
    points_per_slice: int = 50,
    on_slice: Callable[[int], None] | None = None,
) -> tuple[list[tuple[Tensor, Tensor]], SolveStats]:
    """Node voltages along the way (in volts: not decoded by ``circuit.encoding``), for plots and SPICE comparison.

    ``on_slice(k)`` is called as each slice's voltages are in, so that a caller can show progress
    through a long solve.

    Returns:
        One ``(t, v)`` per slice — ``t`` (T,) float64 times, ``v`` (T, B, N_k) voltages — and stats.
    """
    _check_trajectory(circuit, x, points_per_slice)
    waves: list[tuple[Tensor, Tensor]] = []

    def keep(k: int, t: Tensor, ys: Tensor) -> None:
        waves.append((t, ys.transpose(1, 2)))
        if on_slice is not None:
            on_slice(k)

    _, _, stats = _integrate(circuit, x, solver, Backprop(), False, False, points_per_slice, keep)
    return waves, stats

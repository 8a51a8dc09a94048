"""Solver settings: the stepping method and its step control, apart from the circuit.

Adaptive methods control the step with ``rtol``/``atol``; fixed-step methods take
``step_size``. The gradient method (`kirchhoffnet.solve.gradient`) is chosen separately,
when a solve is run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from kirchhoffnet.circuit._kcl import check_kernel
from kirchhoffnet.errors import ConfigError, unknown_choice

ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
FIXED_METHODS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams")
INTEGRATORS = ("auto", "torchdiffeq", "fused")
FUSED_METHODS = ("dopri5",)

MAX_ADAPTIVE_STEPS = 2**31 - 1
"""Largest ``max_steps``: torchdiffeq stores the adaptive step budget as an int32."""

MAX_FIXED_STEPS = 10_000_000
"""Most steps a fixed-step method may take over a solve (all slices together): torchdiffeq builds
the whole time grid up front, and at ~10 µs per step of the smallest circuit 1e7 steps are already
more than a day of work per batch. A policy, not a physical limit: past it, a step is almost
certainly a typo (1e-12 for 1e-2) and the grid alone would need terabytes."""


@dataclass(frozen=True)
class Solver:
    """How to integrate each slice.

    Attributes:
        method: ``dopri5``, ``dopri8``, ``bosh3``, ``fehlberg2``, ``adaptive_heun`` (adaptive) or
            ``euler``, ``midpoint``, ``heun2``, ``heun3``, ``rk4``, ``explicit_adams``, ``implicit_adams`` (fixed step).
        rtol: relative tolerance of adaptive methods.
        atol: absolute tolerance of adaptive methods.
        step_size: step of fixed-step methods, in the circuit's time units.
        first_step: initial step of adaptive methods; ``None`` lets the solver choose.
        min_step: adaptive steps never shrink below this (0 disables the floor).
        max_steps: adaptive steps allowed per slice before the solve is reported as stiff.
        kernel: how the KCL right-hand side is evaluated: ``auto`` (the fastest path that applies),
            ``gather`` (the reference path), ``affine`` (the torch fused paths) or ``fused`` (the numba
            edge kernel; both an error where they do not apply); see `kirchhoffnet.circuit._kcl`.
            Every path gives the same numbers up to rounding.
        integrator: what steps the solve: ``torchdiffeq``, ``fused`` (a slice's whole dopri5 solve in one autograd
            node, `kirchhoffnet.solve._fused_rk`: same steps and answers, its gradient the discrete adjoint with
            the step sizes held constant; an error where the slice's family has no closed-form vector-Jacobian
            product) or ``auto``, the default (``fused`` where it applies, else torchdiffeq: the same steps and
            answers, faster). With [`Adjoint`][kirchhoffnet.Adjoint]
            the fused integrator steps both the forward and the adjoint solve exactly as torchdiffeq's would (same
            augmented state, norm and steps: the same gradient, without torchdiffeq's per-stage overhead).
            Trajectories stay on torchdiffeq.
    """

    method: str = "dopri5"
    rtol: float = 1e-4
    atol: float = 1e-4
    step_size: float | None = None
    first_step: float | None = None
    min_step: float = 0.0
    max_steps: int = 100_000
    kernel: str = "auto"
    integrator: str = "auto"

    def __post_init__(self) -> None:
        check_kernel(self.kernel)
        if self.method not in ADAPTIVE_METHODS + FIXED_METHODS:
            raise ConfigError(unknown_choice("solver method", self.method, ADAPTIVE_METHODS + FIXED_METHODS))
        if self.integrator not in INTEGRATORS:
            raise ConfigError(unknown_choice("integrator", self.integrator, INTEGRATORS))
        if self.integrator == "fused" and self.method not in FUSED_METHODS:
            raise ConfigError(
                f"integrator 'fused' steps {', '.join(FUSED_METHODS)} only, not {self.method!r}; "
                "use integrator 'auto' or 'torchdiffeq'"
            )
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if self.adaptive:
            if self.first_step is not None and not self.first_step > 0:
                raise ConfigError(f"first_step must be positive, got {self.first_step}")
            if not self.min_step >= 0:
                raise ConfigError(f"min_step must be >= 0, got {self.min_step}")
            if not 1 <= int(self.max_steps) <= MAX_ADAPTIVE_STEPS:
                raise ConfigError(
                    f"max_steps must be a positive integer at most {MAX_ADAPTIVE_STEPS} (torchdiffeq's int32), "
                    f"got {self.max_steps}"
                )
        elif self.step_size is None or not (math.isfinite(self.step_size) and self.step_size > 0):
            raise ConfigError(f"fixed-step method {self.method!r} needs a positive step_size, got {self.step_size!r}")

    @property
    def adaptive(self) -> bool:
        return self.method in ADAPTIVE_METHODS

    def options(self) -> dict[str, Any]:
        """The ``options`` dict torchdiffeq expects for this method."""
        if not self.adaptive:
            return {"step_size": self.step_size}
        opts: dict[str, Any] = {"min_step": self.min_step, "max_num_steps": int(self.max_steps)}
        if self.first_step is not None:
            opts["first_step"] = self.first_step
        return opts

    def fixed_steps(self, times: Sequence[float]) -> int:
        """Steps a fixed-step method takes over the slices between ``times`` (0 for adaptive methods);
        a slice shorter than one step takes one."""
        if self.adaptive or self.step_size is None:
            return 0
        return sum(max(1, math.ceil((b - a) / self.step_size)) for a, b in itertools.pairwise(times))

    def with_tolerance(self, rtol: float | None = None, atol: float | None = None) -> Solver:
        """A copy with tolerances replaced where given."""
        return replace(self, rtol=self.rtol if rtol is None else rtol, atol=self.atol if atol is None else atol)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_solver(solver: Solver | str | dict[str, Any] | None) -> Solver:
    """A [`Solver`][kirchhoffnet.solve.Solver] from an instance, a method name, a settings dict or ``None``
    (defaults)."""
    if solver is None:
        return Solver()
    if isinstance(solver, Solver):
        return solver
    if isinstance(solver, str):
        return Solver(method=solver)
    if isinstance(solver, dict):
        try:
            return Solver(**solver)
        except TypeError as exc:
            raise ConfigError(f"bad solver settings {solver}: {exc}") from None
    raise ConfigError(f"solver must be a Solver, a method name or a dict, got {type(solver).__name__}")


_NUMPY_FLOATS = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16}


@torch.compiler.assume_constant_result  # plain numbers: torch.compile runs it, not traces it
def _rounded(times: Sequence[float], dtype: torch.dtype) -> list[float]:
    """``times`` rounded to ``dtype``: in numpy where it has the type, since a tensor made here while a module is
    exported is a fake whose values cannot be compared."""
    if dtype in _NUMPY_FLOATS:
        return np.asarray(times, dtype=np.float64).astype(_NUMPY_FLOATS[dtype]).tolist()
    return torch.tensor(list(times), dtype=torch.float64).to(dtype).tolist()


def check_time_grid(
    times: Sequence[float],
    solver: Solver,
    dtype: torch.dtype,
    times_key: str = "times",
    step_key: str = "step_size",
) -> None:
    """Refuse slice boundaries the solve's dtype cannot represent, and fixed-step grids past
    `MAX_FIXED_STEPS`, before any grid is built.

    In float32, times beyond 3.4e38 overflow and slices shorter than the spacing of floats near
    their start collapse to zero length; torchdiffeq would then fail an assert or allocate the
    whole grid (1 time unit at a step of 1e-12 is 4 TB).

    Raises:
        ConfigError: naming ``times_key`` or ``step_key``, the value found, the limit and the fix.
    """
    info = torch.finfo(dtype)
    name = str(dtype).removeprefix("torch.")
    for k, value in enumerate(times):
        if not (math.isfinite(value) and abs(value) <= info.max):
            raise ConfigError(
                f"{times_key}[{k}] = {value:g} is not representable in {name} (largest {info.max:.3g}); "
                "use slice boundaries of a sensible size (the circuit's time constants are ~1)"
            )
    grid = _rounded(times, dtype)
    for k in range(1, len(grid)):
        if not grid[k] > grid[k - 1]:
            raise ConfigError(
                f"{times_key}: slice {k - 1} from {times[k - 1]:g} to {times[k]:g} has zero length in {name} "
                f"(floats near {times[k - 1]:g} are {info.eps * abs(times[k - 1]):.3g} apart); "
                "use boundaries of order 1 or dtype float64"
            )
    steps = solver.fixed_steps(grid)
    if steps > MAX_FIXED_STEPS:
        raise ConfigError(
            f"{step_key}: {solver.step_size:g} makes {steps:.3g} {solver.method} steps over the slices from "
            f"{times[0]:g} to {times[-1]:g}, more than the limit of {MAX_FIXED_STEPS:.0e}; use a larger {step_key} "
            "or an adaptive method"
        )

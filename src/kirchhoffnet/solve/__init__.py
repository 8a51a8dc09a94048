"""Solving circuits in time: solver settings, gradient methods, forward/reverse integration, log-density, NFE."""

from kirchhoffnet.solve.gradient import (
    DEFAULT_GRADIENT,
    GRADIENTS,
    Adjoint,
    Backprop,
    GradientMethod,
    gradient_method,
)
from kirchhoffnet.solve.simulate import (
    SolveStats,
    recording_slice_ends,
    simulate,
    simulate_log_density,
    solve_field,
    trajectory,
)
from kirchhoffnet.solve.solver import ADAPTIVE_METHODS, FIXED_METHODS, Solver, resolve_solver

__all__ = [
    "ADAPTIVE_METHODS",
    "DEFAULT_GRADIENT",
    "FIXED_METHODS",
    "GRADIENTS",
    "Adjoint",
    "Backprop",
    "GradientMethod",
    "SolveStats",
    "Solver",
    "gradient_method",
    "recording_slice_ends",
    "resolve_solver",
    "simulate",
    "simulate_log_density",
    "solve_field",
    "trajectory",
]

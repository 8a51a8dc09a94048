"""Solving circuits in time: solver settings, forward/reverse integration, log-density, NFE."""

from kirchhoffnet.solve.simulate import SolveStats, simulate, simulate_log_density, trajectory
from kirchhoffnet.solve.solver import ADAPTIVE_METHODS, FIXED_METHODS, GRADIENTS, Solver, resolve_solver

__all__ = [
    "ADAPTIVE_METHODS",
    "FIXED_METHODS",
    "GRADIENTS",
    "SolveStats",
    "Solver",
    "resolve_solver",
    "simulate",
    "simulate_log_density",
    "trajectory",
]

"""Continuous normalizing flows whose vector field is a KirchhoffNet circuit."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet.circuit import Circuit
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.solve import (
    DEFAULT_GRADIENT,
    GradientMethod,
    Solver,
    SolveStats,
    resolve_solver,
    simulate,
    simulate_log_density,
)
from kirchhoffnet.solve.gradient import check_gradient, gradient_spec


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) per row, in nats."""
    return -0.5 * (z * z).sum(dim=1) - 0.5 * z.shape[1] * math.log(2.0 * math.pi)


class Flow(nn.Module):
    """A CNF: base samples z ~ N(0, I) are the initial voltages, data the voltages at the end.

    ``log p(x) = log N(z; 0, I) − ∫ tr(∂f/∂v) dt`` with the trace computed analytically per edge,
    so training by maximum likelihood costs O(E) per evaluation whatever the dimension.

    Args:
        circuit: every slice must have the same node count (the data dimension), no residual.
        solver: solver settings for every solve.
        gradient: [`Backprop`][kirchhoffnet.Backprop] (the default everywhere) or
            [`Adjoint`][kirchhoffnet.Adjoint] (the original code's choice; memory independent of the steps).

    Attributes:
        stats: what the last solve (``log_prob``, ``inverse``, ``sample``, ...) cost; ``None``
            before the first. Its backward counts grow when that solve's graph is differentiated.
    """

    dim: int
    stats: SolveStats | None

    def __init__(
        self,
        circuit: Circuit,
        solver: Solver | str | dict[str, Any] | None = None,
        gradient: GradientMethod = DEFAULT_GRADIENT,
    ) -> None:
        super().__init__()
        widths = set(circuit.widths)
        if len(widths) != 1 or circuit.residual is not None:
            raise ConfigError(
                "a flow needs every slice to have the same node count and no residual (it must be invertible)"
            )
        self.circuit = circuit
        self.solver = resolve_solver(solver)
        self.gradient = check_gradient(gradient)
        self.dim = widths.pop()
        self.stats = None

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density (N,) in nats of data points ``x`` (N, d); differentiable in the parameters."""
        z, trace_integral, self.stats = simulate_log_density(
            self.circuit, x, solver=self.solver, gradient=self.gradient, reverse=True
        )
        return standard_normal_log_prob(z) - trace_integral

    def forward(self, x: Tensor) -> Tensor:
        return self.log_prob(x)

    def inverse(self, x: Tensor) -> Tensor:
        """Data points → base space (integrating backwards in time)."""
        z, self.stats = simulate(self.circuit, x, solver=self.solver, gradient=self.gradient, reverse=True)
        return z

    def sample(self, z: Tensor | int, generator: torch.Generator | None = None) -> Tensor:
        """Map base points ``z`` (N, d) to data space, or draw ``z`` ~ N(0, I) first if given a count."""
        z = self._base_points(z, generator)
        x, self.stats = simulate(self.circuit, z, solver=self.solver, gradient=self.gradient)
        return x

    def sample_with_log_prob(self, z: Tensor | int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Samples and their exact model log-density, in one forward solve (for reverse-KL training)."""
        z = self._base_points(z, generator)
        x, trace_integral, self.stats = simulate_log_density(
            self.circuit, z, solver=self.solver, gradient=self.gradient
        )
        return x, standard_normal_log_prob(z) - trace_integral

    def _base_points(self, z: Tensor | int, generator: torch.Generator | None) -> Tensor:
        if isinstance(z, Tensor):
            return z
        if int(z) < 1:
            raise ConfigError(f"number of samples must be positive, got {z}")
        param = next(self.circuit.parameters())
        return torch.randn(int(z), self.dim, generator=generator, dtype=param.dtype).to(param.device)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "flow",
            "circuit": self.circuit.spec(),
            **gradient_spec(self.solver, self.gradient),
        }

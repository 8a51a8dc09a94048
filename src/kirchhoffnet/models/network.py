"""Feed-forward KirchhoffNets: inputs as initial voltages, a readout of the final voltages."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from kirchhoffnet.circuit import Circuit
from kirchhoffnet.models.readout import resolve_readout
from kirchhoffnet.solve import Solver, SolveStats, resolve_solver, simulate
from kirchhoffnet.solve.solver import check_gradient


class Network(nn.Module):
    """A circuit used as a function: classification logits or regression outputs.

    Args:
        circuit: the circuit; the input fills its first nodes (see :class:`Circuit`).
        readout: ``"last10"``, ``"first1"``, a ``{"name": "linear", ...}`` dict, a module, or
            ``None`` for all final voltages.
        solver: solver settings.
        gradient: ``backprop`` or ``adjoint``.
    """

    def __init__(
        self,
        circuit: Circuit,
        readout: str | dict[str, Any] | nn.Module | None = None,
        solver: Solver | str | dict[str, Any] | None = None,
        gradient: str = "backprop",
    ) -> None:
        super().__init__()
        self.circuit = circuit
        self.readout = resolve_readout(readout)
        self.solver = resolve_solver(solver)
        self.gradient = check_gradient(gradient)
        self.last_stats: SolveStats | None = None

    def forward(self, x: Tensor) -> Tensor:
        v, self.last_stats = simulate(self.circuit, x, solver=self.solver, gradient=self.gradient)
        return v if self.readout is None else self.readout(v)

    def spec(self) -> dict[str, Any]:
        readout = None if self.readout is None else self.readout.spec()  # type: ignore[operator]
        return {
            "kind": "network",
            "circuit": self.circuit.spec(),
            "readout": readout,
            "solver": self.solver.to_dict(),
            "gradient": self.gradient,
        }

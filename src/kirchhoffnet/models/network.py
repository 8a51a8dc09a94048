"""Feed-forward KirchhoffNets: inputs as initial voltages, a readout of the final voltages."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from kirchhoffnet.circuit import Circuit
from kirchhoffnet.models.readout import resolve_readout
from kirchhoffnet.solve import DEFAULT_GRADIENT, GradientMethod, Solver, SolveStats, resolve_solver, simulate
from kirchhoffnet.solve.gradient import check_gradient, gradient_spec


class Network(nn.Module):
    """A circuit used as a function: classification logits or regression outputs, or with no readout
    the circuit's own forward map, ``v_out = Network(circuit)(v_in)`` (what ``kn.simulate`` returns).

    Args:
        circuit: the circuit; the input fills its first nodes (see [`Circuit`][kirchhoffnet.Circuit]).
        readout: ``"last10"``, ``"first1"``, a ``{"name": "linear", ...}`` dict, a module, or
            ``None`` for all final voltages.
        solver: solver settings.
        gradient: [`Backprop`][kirchhoffnet.Backprop] (the default everywhere) or [`Adjoint`][kirchhoffnet.Adjoint].

    Attributes:
        stats: what the last forward's solve cost; ``None`` before the first. Its backward counts
            grow when that forward's graph is differentiated.
    """

    stats: SolveStats | None

    def __init__(
        self,
        circuit: Circuit,
        readout: str | dict[str, Any] | nn.Module | None = None,
        solver: Solver | str | dict[str, Any] | None = None,
        gradient: GradientMethod = DEFAULT_GRADIENT,
    ) -> None:
        super().__init__()
        self.circuit = circuit
        self.readout = resolve_readout(readout)
        self.solver = resolve_solver(solver)
        self.gradient = check_gradient(gradient)
        self.stats = None

    def forward(self, x: Tensor) -> Tensor:
        v, self.stats = simulate(self.circuit, x, solver=self.solver, gradient=self.gradient)
        return v if self.readout is None else self.readout(v)

    def spec(self) -> dict[str, Any]:
        readout = None if self.readout is None else self.readout.spec()  # type: ignore[operator]
        return {
            "kind": "network",
            "circuit": self.circuit.spec(),
            "readout": readout,
            **gradient_spec(self.solver, self.gradient),
        }

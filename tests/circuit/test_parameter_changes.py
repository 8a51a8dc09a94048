"""Every way users change a circuit's parameters or capacitances takes effect on the next solve.

The kernel caches operators built from the parameters and capacitances; each change below must
give the same voltages as a circuit built afresh with the new values.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import kirchhoffnet as kn

from ..conftest import small_circuit

SOLVER = kn.Solver("rk4", step_size=0.25)


def _each_param(change: Callable[[torch.Tensor], None]) -> Callable[[kn.Circuit], None]:
    def apply(circuit: kn.Circuit) -> None:
        for p in circuit.parameters():
            change(p)

    return apply


def _each_capacitance(change: Callable[[torch.Tensor], None]) -> Callable[[kn.Circuit], None]:
    def apply(circuit: kn.Circuit) -> None:
        for piece in circuit.slices:
            change(piece.capacitance)

    return apply


def _no_grad_copy(p: torch.Tensor) -> None:
    with torch.no_grad():
        p.copy_(torch.randn_like(p))


def _set_data(p: torch.Tensor) -> None:
    p.data = torch.randn_like(p)


def _optimizer_step(circuit: kn.Circuit) -> None:
    optimizer = torch.optim.SGD(circuit.parameters(), lr=0.5)
    for p in circuit.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()


def _vector_to_parameters(circuit: kn.Circuit) -> None:
    flat = torch.nn.utils.parameters_to_vector(circuit.parameters())
    torch.nn.utils.vector_to_parameters(torch.randn_like(flat), circuit.parameters())


def _load_state_dict(circuit: kn.Circuit) -> None:
    other = small_circuit(num_nodes=circuit.slice(0).num_nodes, capacitance=2.0)
    circuit.load_state_dict(other.state_dict())


CHANGES: dict[str, Callable[[kn.Circuit], None]] = {
    "p.data.clamp_": _each_param(lambda p: p.data.clamp_(-0.2, 0.2)),
    "p.data.copy_": _each_param(lambda p: p.data.copy_(torch.randn_like(p))),
    "p.data.mul_": _each_param(lambda p: p.data.mul_(3.0)),
    "no_grad p.copy_": _each_param(_no_grad_copy),
    "p.data = tensor": _each_param(_set_data),
    "optimizer.step": _optimizer_step,
    "vector_to_parameters": _vector_to_parameters,
    "load_state_dict": _load_state_dict,
    "module.half": lambda c: c.half(),  # rounds the values, then solved in float32
    "capacitance.data.mul_": _each_capacitance(lambda c: c.data.mul_(3.0)),
    "capacitance.data.copy_": _each_capacitance(lambda c: c.data.copy_(torch.rand_like(c) + 0.5)),
    "capacitance.data = tensor": _each_capacitance(lambda c: setattr(c, "data", torch.rand_like(c) + 0.5)),
    "capacitance.mul_": _each_capacitance(lambda c: c.mul_(3.0)),
}


def _fresh(circuit: kn.Circuit) -> kn.Circuit:
    """A circuit built from the current values, sharing no tensor or cache with ``circuit``."""
    state = {name: t.detach().clone() for name, t in circuit.state_dict().items()}
    return kn.Circuit.from_spec(circuit.spec(), state)


@pytest.mark.parametrize("kernel", ["auto", "gather"])
@pytest.mark.parametrize("num_nodes", [4, 20])  # dense operators, CSR operators
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_changed_parameter_takes_effect(change, num_nodes, kernel):
    circuit = small_circuit(num_nodes=num_nodes)
    solver = kn.Solver("rk4", step_size=0.25, kernel=kernel)
    x = torch.randn(6, 2)
    with torch.no_grad():
        before, _ = kn.simulate(circuit, x, solver=solver)  # fills the caches
        CHANGES[change](circuit)
        after, _ = kn.simulate(circuit, x, solver=solver)
        expected, _ = kn.simulate(_fresh(circuit), x, solver=solver)
    assert not torch.allclose(after, before), "the change must change the solve for this test to mean anything"
    torch.testing.assert_close(after, expected, rtol=0, atol=0)


def test_unchanged_parameters_reuse_the_kernel_and_its_operators():
    piece = small_circuit(num_nodes=20).slice(0)
    v = torch.randn(piece.num_state, 3)
    with torch.no_grad():
        piece.field(v)
        kernel = piece.kernel(v.dtype, v.device)
        cached = kernel._sparse_cache
        piece.field(v)
    assert piece.kernel(v.dtype, v.device) is kernel
    assert kernel._sparse_cache is cached

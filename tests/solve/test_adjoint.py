"""The closed-form adjoint against torchdiffeq's autograd adjoint: same steps, same gradients."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import kirchhoffnet as kn

from ..conftest import small_circuit


def _gradients(model, run, autograd_adjoint: bool):
    """Parameter and input gradients of ``run(model, x)`` and the backward evaluation counts; with
    ``autograd_adjoint`` every slice runs on the gather kernel, whose adjoint is torchdiffeq's
    ``odeint_adjoint`` differentiating the right-hand side by autograd."""
    kernel = "gather" if autograd_adjoint else "auto"
    model.zero_grad()
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_()
    loss, stats = run(model, x, kernel)
    loss.backward()
    if not isinstance(getattr(model, "gradient", None), kn.Backprop):  # a circuit under kn.simulate: the adjoint
        assert ("closed-form adjoint" in stats.kernels[0]) != autograd_adjoint
    grads = torch.cat([p.grad.flatten() for p in model.parameters()] + [x.grad.flatten()])
    return grads, stats.nfe_backward


def _simulate(solver):
    def run(circuit, x, kernel):
        v, stats = kn.simulate(circuit, x, solver=replace(solver, kernel=kernel), gradient=kn.Adjoint())
        return (v**2).sum() + v[:, 0].sin().sum(), stats

    return run


def _log_prob(flow, x, kernel):
    flow.solver = replace(flow.solver, kernel=kernel)
    return -flow.log_prob(x).mean(), flow.stats


# The closed-form adjoint stepped by torchdiffeq and by the fused integrator (what the default ``auto`` takes):
# the same steps; torchdiffeq's agrees to 1e-9, the fused one to its kernels' summation order (~1e-9 of
# gradients of order 1e5 here), hence 1e-8.
INTEGRATORS = [("torchdiffeq", 1e-9), ("auto", 1e-8)]


@pytest.mark.parametrize(("integrator", "rtol"), INTEGRATORS)
@pytest.mark.parametrize("device", ["ShiftTanh2", "ShiftTanh1", "ShiftRelu1", "ShiftLeakyRelu2", "Conductance"])
def test_simulate_gradients_equal_torchdiffeq_adjoint(device, integrator, rtol):
    # Every coefficient form: own gains (tanh2), difference form b = −a (tanh1, conductance),
    # a learned output scale post (relu1), piecewise-linear slopes.
    circuit = small_circuit(device, num_nodes=4).double()
    kinked = "Relu" in device  # adaptive steps crawl through the rectifiers' kinks
    solver = kn.Solver(method="rk4", step_size=0.05) if kinked else kn.Solver(rtol=1e-7, atol=1e-7)
    run = _simulate(replace(solver, integrator=integrator))
    ours, nfe_ours = _gradients(circuit, run, False)
    theirs, nfe_theirs = _gradients(circuit, run, True)
    assert nfe_ours == nfe_theirs  # same augmented state, norm and tolerances: the same steps
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize(("integrator", "rtol"), INTEGRATORS)
@pytest.mark.parametrize("seminorm", [False, True])
def test_log_density_gradients_equal_torchdiffeq_adjoint(seminorm, integrator, rtol):
    # Reverse-time solve with the divergence row, as in CNF training; the seminorm drops the
    # parameter adjoints from the step control in both implementations alike.
    circuit = small_circuit("ShiftTanh2", num_nodes=4).double()
    solver = kn.Solver(rtol=1e-6, atol=1e-6, integrator=integrator)
    flow = kn.Flow(circuit, solver, gradient=kn.Adjoint(seminorm=seminorm))
    ours, nfe_ours = _gradients(flow, _log_prob, False)
    theirs, nfe_theirs = _gradients(flow, _log_prob, True)
    assert nfe_ours == nfe_theirs
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=1e-12)


def test_log_density_adjoint_matches_backprop_at_tight_tolerance():
    circuit = small_circuit("ShiftTanh2", num_nodes=4).double()
    flow = kn.Flow(circuit, kn.Solver(rtol=1e-10, atol=1e-10), gradient=kn.Adjoint())
    adjoint, _ = _gradients(flow, _log_prob, False)
    flow.gradient = kn.Backprop()
    backprop, _ = _gradients(flow, _log_prob, False)
    torch.testing.assert_close(adjoint, backprop, rtol=1e-5, atol=1e-7)


def test_frozen_parameters_get_no_gradient_but_inputs_do():
    circuit = small_circuit("ShiftTanh2", num_nodes=4).double().requires_grad_(False)
    x = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    v, _ = kn.simulate(circuit, x, gradient=kn.Adjoint())
    v.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in circuit.parameters())

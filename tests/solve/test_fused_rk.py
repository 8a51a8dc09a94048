"""The fused integrator against torchdiffeq: the same steps, the same answers, and a discrete adjoint that
finite differences and torchdiffeq's backprop agree with."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.data import sample_toy

from ..conftest import small_circuit

TWOMOON = Path(__file__).resolve().parents[2] / "data" / "original" / "twomoon"


def _log_prob_step(flow: kn.Flow, x: torch.Tensor, integrator: str):
    """log p, the parameter gradient of the mean NLL, the NFE and the kernels of one training step."""
    flow.solver = replace(flow.solver, integrator=integrator)
    flow.zero_grad()
    log_p = flow.log_prob(x)
    (-log_p.mean()).backward()
    grads = torch.cat([p.grad.flatten() for p in flow.parameters()])
    assert flow.stats is not None
    return log_p.detach(), grads, flow.stats.nfe, flow.stats.kernels


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_twomoon_step_matches_torchdiffeq_backprop():
    # The shipped checkpoint gives first_step, so torchdiffeq's backprop differentiates no step size either:
    # the two gradients are the same numbers up to the order of summation.
    flow = kn.compat.load_original(TWOMOON).double()
    flow.gradient = kn.Backprop()
    x = torch.from_numpy(sample_toy("twomoon", 128, seed=0)).double()
    ours, ours_grad, ours_nfe, kernels = _log_prob_step(flow, x, "fused")
    theirs, theirs_grad, theirs_nfe, _ = _log_prob_step(flow, x, "torchdiffeq")
    assert "fused-rk" in kernels[0]
    assert ours_nfe == theirs_nfe
    assert _relative(ours, theirs) < 1e-12
    assert _relative(ours_grad, theirs_grad) < 1e-10


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("divergence", [False, True])
def test_random_circuit_same_steps_and_endpoint(reverse, divergence):
    # No first_step: the initial step selection too must be torchdiffeq's, or the NFE would differ.
    circuit = small_circuit("ShiftTanh2", num_nodes=4).double()
    x = torch.randn(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_()
    results = []
    for integrator in ("fused", "torchdiffeq"):
        solver = kn.Solver(rtol=1e-6, atol=1e-6, integrator=integrator)
        circuit.zero_grad()
        x.grad = None
        if divergence:
            v, trace, stats = kn.solve.simulate_log_density(circuit, x, solver=solver, reverse=reverse)
            loss = (v**2).sum() + trace.sum()
        else:
            v, stats = kn.simulate(circuit, x, solver=solver, reverse=reverse)
            loss = (v**2).sum()
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in circuit.parameters()] + [x.grad.flatten()])
        results.append((v.detach(), grads, stats.nfe))
    (ours, ours_grad, ours_nfe), (theirs, theirs_grad, theirs_nfe) = results
    assert ours_nfe == theirs_nfe
    assert _relative(ours, theirs) < 1e-12
    # torchdiffeq's backprop also differentiates its initial step size, which depends on the state and the
    # parameters; the fused solve holds it constant: a difference of the order of the tolerance squared.
    assert 0 < _relative(ours_grad, theirs_grad) < 1e-7


class _LogDensity(torch.nn.Module):
    """A reverse-time log-density solve as a module, so that `torch.func.functional_call` can swap its parameters."""

    def __init__(self, circuit: kn.Circuit, solver: kn.Solver) -> None:
        super().__init__()
        self.circuit, self.solver = circuit, solver

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v, trace, stats = kn.solve.simulate_log_density(self.circuit, x, solver=self.solver, reverse=True)
        assert stats.nfe == [1 + 6 * 3] * self.circuit.num_slices  # 0.03, 0.3, the rest of the slice: three steps
        return v, trace


@pytest.mark.parametrize("device", ["ShiftTanh2", "ShiftRelu1", "Conductance"])
def test_discrete_adjoint_passes_gradcheck(device):
    # Tolerances so loose that every step is accepted and grows tenfold: the steps are then the same
    # whatever the inputs, and finite differences see the discrete solution's own derivative.
    circuit = small_circuit(device, num_nodes=3, repeat=(1, 1)).double()
    model = _LogDensity(circuit, kn.Solver(rtol=1e6, atol=1e6, first_step=0.03, integrator="fused"))
    names = [name for name, _ in model.named_parameters()]

    def log_density(x, *params):
        return torch.func.functional_call(model, dict(zip(names, params, strict=True)), (x,))

    x = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).requires_grad_()
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    assert torch.autograd.gradcheck(log_density, (x, *params), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_no_grad_solve_equals_torchdiffeq():
    circuit = small_circuit("ShiftTanh2").double()
    x = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        v, stats = kn.simulate(circuit, x, solver=kn.Solver(integrator="auto"))
        reference, _ = kn.simulate(circuit, x, solver=kn.Solver(integrator="torchdiffeq"))
    assert "fused-rk" in stats.kernels[0]
    torch.testing.assert_close(v, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("divergence", [False, True])
def test_adjoint_on_the_fused_integrator_is_torchdiffeqs(divergence):
    # With the adjoint, the fused integrator steps both the forward and the adjoint solve as torchdiffeq does (the
    # same augmented state, norm and step control): the same evaluations and, in float64, the same gradient.
    circuit = small_circuit("ShiftTanh2").double()
    x = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4)).requires_grad_()
    results = []
    for integrator in ("auto", "torchdiffeq"):
        circuit.zero_grad()
        x.grad = None
        solver = kn.Solver(rtol=1e-6, atol=1e-6, integrator=integrator)
        if divergence:
            v, trace, stats = kn.solve.simulate_log_density(circuit, x, solver=solver, gradient=kn.Adjoint())
            loss = (v**2).sum() + trace.sum()
        else:
            v, stats = kn.simulate(circuit, x, solver=solver, gradient=kn.Adjoint())
            loss = (v**2).sum()
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in circuit.parameters()] + [x.grad.flatten()])
        results.append((grads, stats.nfe, stats.nfe_backward, stats.kernels[0]))
    (ours, ours_nfe, ours_backward, kernels), (theirs, nfe, backward, _) = results
    assert "fused-rk" in kernels and "closed-form adjoint" in kernels
    assert (ours_nfe, ours_backward) == (nfe, backward)
    assert _relative(ours, theirs) < 1e-10


def test_fused_refuses_what_it_cannot_run():
    with pytest.raises(kn.errors.ConfigError, match=r"integrator 'fused' steps dopri5 only, not 'bosh3'"):
        kn.Solver("bosh3", integrator="fused")
    with pytest.raises(kn.errors.ConfigError, match="integrator"):
        kn.Solver(integrator="diffrax")
    circuit = small_circuit("ShiftTanh2")
    x = torch.randn(4, 3)
    with pytest.raises(
        kn.errors.ConfigError,
        match=r"closed-form vector-Jacobian product, which slice 0 \(ShiftTanh2, kernel 'gather'\)",
    ):
        kn.simulate(circuit, x, solver=kn.Solver(integrator="fused", kernel="gather"))
    _, stats = kn.simulate(circuit, x, solver=kn.Solver(integrator="auto", kernel="gather"))
    assert "fused-rk" not in stats.kernels[0]


def test_step_failures_are_solver_errors():
    circuit = small_circuit("ShiftTanh2")
    x = torch.randn(4, 3)
    with pytest.raises(kn.errors.SolverError, match=r"slice 0 .* more than max_steps=2 steps"):
        kn.simulate(circuit, x, solver=kn.Solver(rtol=1e-9, atol=1e-9, max_steps=2, integrator="fused"))
    with torch.no_grad():
        circuit.slice(0).params[0, 0] = float("nan")
    for first_step, where in ((None, r"0: the voltages or the step size became NaN"), (0.01, r"0.01: the step size")):
        messages = []
        for integrator in ("fused", "torchdiffeq"):
            with pytest.raises(kn.errors.SolverError, match=rf"slice 0 .* failed at t = {where}") as failure:
                kn.simulate(circuit, x, solver=kn.Solver(first_step=first_step, integrator=integrator))
            messages.append(str(failure.value))
        assert messages[0] == messages[1]


def test_integrator_round_trips_through_yaml_and_checkpoints(tmp_path):
    from kirchhoffnet.config import SolverConfig

    assert SolverConfig(integrator="fused").build() == kn.Solver(integrator="fused")
    with pytest.raises(ValueError, match="integrator"):
        SolverConfig(integrator="diffrax")
    flow = kn.Flow(small_circuit("ShiftTanh2"), solver=kn.Solver(integrator="auto"))
    kn.save(flow, tmp_path / "flow.safetensors")
    assert kn.load(tmp_path / "flow.safetensors").solver.integrator == "auto"


@pytest.mark.parametrize(
    ("gradient", "divergence", "reverse"),
    [
        (kn.Backprop(), True, True),
        (kn.Backprop(), False, False),
        (kn.Adjoint(), True, True),
        (kn.Adjoint(), False, False),
        (kn.Adjoint(seminorm=True), True, False),
    ],
)
def test_whole_step_kernel_takes_the_torch_stages_steps(monkeypatch, gradient, divergence, reverse):
    # On a small float32 tanh circuit each trial step is one numba call (the forward solve's and the adjoint's),
    # against the same solve with the stages taken in torch (the same field kernel). The two round the error
    # estimate differently (the kernel sums it in float64); where it is mostly rounding, as in the adjoint's first
    # steps, the ratios differ by a few % and so do the next step sizes: the solves may part by a trial step.
    from kirchhoffnet.circuit._small import SmallKcl
    from kirchhoffnet.solve._adjoint import _AdjointSteps
    from kirchhoffnet.solve._fused_rk import Dopri5, FusedProblem

    circuit = small_circuit("ShiftTanh2", num_nodes=5)
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(6)).requires_grad_()
    solver = kn.Solver(rtol=1e-4, atol=1e-4, integrator="fused")
    results = []
    calls = {"rk_field": 0, "rk_adjoint": 0}  # the trial steps the numba kernel took

    def counted(name: str):
        method = getattr(SmallKcl, name)

        def run(*args, **kwargs):
            calls[name] += 1
            return method(*args, **kwargs)

        return run

    for name in calls:
        monkeypatch.setattr(SmallKcl, name, counted(name))
    for whole_step in (True, False):
        if not whole_step:
            monkeypatch.setattr(FusedProblem, "_attempt", Dopri5._attempt)
            monkeypatch.setattr(_AdjointSteps, "_attempt", Dopri5._attempt)
        circuit.zero_grad()
        x.grad = None
        if divergence:
            solve = kn.solve.simulate_log_density(circuit, x, solver=solver, gradient=gradient, reverse=reverse)
            v, trace, stats = solve
            loss = (v**2).sum() + trace.sum()
        else:
            v, stats = kn.simulate(circuit, x, solver=solver, gradient=gradient, reverse=reverse)
            loss = (v**2).sum()
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in circuit.parameters()] + [x.grad.flatten()])
        results.append((v.detach(), grads, stats.nfe, stats.nfe_backward))
    (ours, ours_grads, *ours_nfe), (theirs, theirs_grads, *theirs_nfe) = results
    adjoint = isinstance(gradient, kn.Adjoint)
    assert calls == {"rk_field": sum(ours_nfe[0]) // 6, "rk_adjoint": sum(ours_nfe[1]) // 6 if adjoint else 0}
    for ours_k, theirs_k in zip(ours_nfe, theirs_nfe, strict=True):  # forward, backward
        assert all(abs(a - b) <= 6 for a, b in zip(ours_k, theirs_k, strict=True))
    assert sum(ours_nfe[0]) > 3 * 7 * circuit.num_slices  # several steps per slice
    assert _relative(ours, theirs) < 1e-5
    assert _relative(ours_grads, theirs_grads) < 1e-4


def test_a_checkpoint_without_an_integrator_loads_with_the_default_and_the_same_answers():
    # Checkpoints and configs written before the integrator setting existed do not record one: they load with
    # the default, auto, which takes torchdiffeq's steps (float64 here: the same log-density to rounding).
    from kirchhoffnet.checkpoint import build

    flow = kn.Flow(small_circuit("ShiftTanh2"), solver=kn.Solver(integrator="torchdiffeq")).double()
    spec = flow.spec()
    del spec["solver"]["integrator"]
    loaded = build(spec, flow.state_dict())
    assert loaded.solver.integrator == kn.Solver().integrator == "auto"
    x = torch.randn(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ours, theirs = loaded.log_prob(x), flow.log_prob(x)
    assert "fused-rk" in loaded.stats.kernels[0] and "fused-rk" not in flow.stats.kernels[0]
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)

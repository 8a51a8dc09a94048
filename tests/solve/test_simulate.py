"""Integration against closed forms, other solvers and the gradient methods."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import torch

import kirchhoffnet as kn
from kirchhoffnet.errors import ConfigError, SolverError

from ..conftest import small_circuit

TIGHT = kn.Solver(rtol=1e-10, atol=1e-10)


def _linear_circuit(num_nodes: int = 5, cap=1.0) -> kn.Circuit:
    edges = kn.topology.random_graph(num_nodes, 3 * num_nodes, seed=0, ground_fraction=0.3)
    circuit = kn.Circuit(edges, "Conductance", num_nodes=num_nodes, capacitance=cap, init="uniform").double()
    return circuit


def _system_matrix(piece: kn.Slice) -> torch.Tensor:
    """A with dv/dt = A v for a circuit of conductances: the Laplacian structure, read column by column."""
    eye = torch.eye(piece.num_state, dtype=torch.float64)
    return piece(0.0, eye).T


def test_rc_decay_is_exponential():
    # One node, a conductance g to ground, capacitance C: v(t) = v0 · exp(−g t / C).
    g, cap, t_end = 0.75, 2.5, 3.0  # exactly representable, so float32 storage loses nothing
    piece = kn.Slice([[1], [0]], "Conductance", capacitance=cap, params=torch.tensor([[g]]))
    circuit = kn.Circuit([piece], times=(0.0, t_end)).double()
    v0 = torch.tensor([[1.0], [-0.4]], dtype=torch.float64)
    v, _ = kn.simulate(circuit, v0, solver=TIGHT)
    torch.testing.assert_close(v, v0 * math.exp(-g * t_end / cap), rtol=1e-8, atol=1e-10)


def test_linear_circuit_matches_the_matrix_exponential():
    circuit = _linear_circuit()
    piece = circuit.slice(0)
    matrix = _system_matrix(piece)
    v0 = torch.randn(3, piece.num_state, dtype=torch.float64)
    v, _ = kn.simulate(circuit, v0, solver=TIGHT)
    expected = v0 @ torch.linalg.matrix_exp(matrix * 1.0).T
    torch.testing.assert_close(v, expected, rtol=1e-8, atol=1e-9)


# Each adaptive method at a tolerance where its end error is its own, and the bound on
# |error| / tol: what the method itself reaches (fehlberg2's error estimate is loose). Before the
# slice ends were steps, dopri8 and bosh3 returned their interpolant over an overshooting last step:
# 246× and 1300× the tolerance on this circuit.
END_ERROR = {"dopri5": (1e-10, 3), "dopri8": (1e-10, 1), "bosh3": (1e-10, 10), "fehlberg2": (1e-6, 300)}
END_ERROR["adaptive_heun"] = (1e-6, 5)


def _end_problem() -> tuple[kn.Circuit, torch.Tensor, torch.Tensor]:
    """A one-slice linear circuit ending at 1.7 (mid-step for every method) and dv/dt = A v's A."""
    torch.manual_seed(1)
    circuit = kn.Circuit(list(_linear_circuit().slices), times=(0.0, 1.7))
    v0 = torch.randn(4, circuit.slice(0).num_state, dtype=torch.float64)
    return circuit, v0, _system_matrix(circuit.slice(0)).detach()


def test_every_adaptive_method_covers_each_slice_end():
    assert set(END_ERROR) == set(kn.solve.ADAPTIVE_METHODS)


@pytest.mark.parametrize("method", sorted(END_ERROR))
def test_adaptive_slice_end_is_as_accurate_as_the_tolerance(method):
    circuit, v0, matrix = _end_problem()
    tol, bound = END_ERROR[method]
    with torch.no_grad():
        v, _ = kn.simulate(circuit, v0, solver=kn.Solver(method, rtol=tol, atol=tol))
    exact = v0 @ torch.linalg.matrix_exp(matrix * 1.7).T
    assert float((v - exact).abs().max()) < bound * tol


def test_reverse_slice_end_is_accurate():
    circuit, v0, matrix = _end_problem()
    with torch.no_grad():
        back, _ = kn.simulate(circuit, v0, solver=kn.Solver("dopri8", rtol=1e-10, atol=1e-10), reverse=True)
    exact = v0 @ torch.linalg.matrix_exp(-matrix * 1.7).T
    assert float((back - exact).abs().max() / exact.abs().max()) < 50 * 1e-10


def test_adjoint_backward_solve_ends_accurately_on_the_slice_start():
    circuit, v0, matrix = _end_problem()
    x = v0.clone().requires_grad_()
    v, _ = kn.simulate(circuit, x, solver=kn.Solver("dopri8", rtol=1e-10, atol=1e-10), gradient=kn.Adjoint())
    v.sum().backward()
    exact = torch.linalg.matrix_exp(matrix * 1.7).sum(0).expand_as(x)  # d Σ exp(A t) x / dx
    assert float((x.grad - exact).abs().max()) < 1e-10


@pytest.mark.parametrize("k", [1 / 64, 4.0])  # powers of two: exact in float32 and float64
def test_capacitance_times_k_equals_time_times_k(k):
    # C dv/dt = I(v): scaling C by k and the duration by k gives the same trajectory end point.
    base = small_circuit("ShiftTanh1", slices=1).double()
    scaled = kn.Circuit(
        [kn.Slice(base.slice(0).edge_index, "ShiftTanh1", capacitance=k, params=base.slice(0).params.detach())],
        times=(0.0, k),
    ).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    v1, _ = kn.simulate(base, x, solver=TIGHT)
    v2, _ = kn.simulate(scaled, x, solver=TIGHT)
    torch.testing.assert_close(v1, v2, rtol=1e-7, atol=1e-8)


def test_nonlinear_circuit_matches_scipy_radau():
    circuit = small_circuit("ShiftTanh2", num_nodes=6, slices=1).double()
    piece = circuit.slice(0)
    x = torch.randn(1, 5, dtype=torch.float64)

    def rhs(t, y):
        with torch.no_grad():
            return piece(t, torch.from_numpy(y)[None])[0].numpy()

    ref = scipy.integrate.solve_ivp(rhs, (0.0, 1.0), x[0].numpy(), method="Radau", rtol=1e-11, atol=1e-12)
    v, _ = kn.simulate(circuit, x, solver=TIGHT)
    np.testing.assert_allclose(v[0].detach().numpy(), ref.y[:, -1], rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize(("method", "order"), [("euler", 1), ("midpoint", 2), ("heun3", 3), ("rk4", 4)])
def test_fixed_step_methods_converge_at_their_order(method, order):
    # Richardson: with results at h, h/2, h/4, h/8 the successive differences shrink by 2^order,
    # which needs no reference solution (a tight adaptive one is itself only ~1e-10 accurate).
    circuit = small_circuit("ShiftTanh2", slices=1).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    ends = [kn.simulate(circuit, x, solver=kn.Solver(method=method, step_size=0.04 / 2**k))[0] for k in range(4)]
    diffs = [(ends[k] - ends[k + 1]).abs().max().item() for k in range(3)]
    rates = [math.log2(diffs[k] / diffs[k + 1]) for k in range(2)]
    # The observed order must reach the method's order (−0.3 for noise); pre-asymptotic effects at
    # these steps make the tanh circuit converge up to ~0.7 faster than the asymptotic rate.
    assert all(order - 0.3 < r < order + 0.7 for r in rates), rates


def test_adjoint_and_backprop_gradients_agree():
    circuit = small_circuit("ShiftTanh2").double()
    x = torch.randn(5, 3, dtype=torch.float64)
    grads = {}
    for gradient in (kn.Backprop(), kn.Adjoint()):
        circuit.zero_grad()
        v, _ = kn.simulate(circuit, x, solver=kn.Solver(rtol=1e-10, atol=1e-10), gradient=gradient)
        (v**2).sum().backward()
        grads[gradient.name] = [p.grad.clone() for p in circuit.parameters()]
    for a, b in zip(grads["backprop"], grads["adjoint"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("gradient", [kn.Backprop(), kn.Adjoint()], ids=str)
def test_gradients_match_finite_differences(gradient):
    circuit = small_circuit("ShiftLeakyRelu2", num_nodes=3, repeat=(1, 1), slices=1).double()
    x = torch.randn(2, 2, dtype=torch.float64)
    params = circuit.slice(0).params

    def loss(p):
        with torch.no_grad():
            params.copy_(p)
        return kn.simulate(circuit, x, solver=TIGHT)[0].pow(2).sum()

    base = params.detach().clone()
    v, _ = kn.simulate(circuit, x, solver=TIGHT, gradient=gradient)
    (v**2).sum().backward()
    analytic = params.grad.clone()
    numeric = torch.zeros_like(base)
    eps = 1e-6
    for idx in np.ndindex(*base.shape):
        up, down = base.clone(), base.clone()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (loss(up) - loss(down)) / (2 * eps)
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_reverse_integration_inverts_forward():
    circuit = small_circuit("ShiftTanh2").double()
    x = torch.randn(6, 3, dtype=torch.float64)
    v, _ = kn.simulate(circuit, x, solver=TIGHT)
    back, _ = kn.simulate(circuit, v, solver=TIGHT, reverse=True)
    torch.testing.assert_close(back, x, rtol=1e-7, atol=1e-8)


def test_nfe_is_counted_per_slice_and_for_the_backward_pass():
    circuit = small_circuit("ShiftTanh2", slices=3)
    v, stats = kn.simulate(circuit, torch.randn(4, 3), gradient=kn.Adjoint())
    assert len(stats.nfe) == 3 and min(stats.nfe) >= 6  # dopri5 takes at least one 6-stage step
    assert stats.nfe_backward == [0, 0, 0]
    v.sum().backward()
    assert min(stats.nfe_backward) > 0
    assert stats.total_nfe == sum(stats.nfe) + sum(stats.nfe_backward)
    assert set(stats.to_dict()) == {"nfe", "nfe_backward", "wall_time_s", "kernels"}


def test_fill_zeros_and_repeat_between_slices():
    wide = kn.topology.fully_connect(5, (1, 1))
    narrow = kn.topology.fully_connect(3, (1, 1))
    for fill in ("zeros", "repeat"):
        circuit = kn.Circuit([narrow, wide, narrow], "Conductance", fill=fill, init="zeros")
        x = torch.tensor([[1.0, 2.0]])
        state = circuit.resize(circuit.input_state(x), 4)
        expected = [1.0, 2.0, 0.0, 0.0] if fill == "zeros" else [1.0, 2.0, 1.0, 2.0]
        assert state.T.tolist() == [expected]
        v, _ = kn.simulate(circuit, x)  # zero conductances: voltages only move through fill/truncation
        assert v.tolist() == [[1.0, 2.0]]


def test_residual_adds_an_earlier_slice_output():
    circuit = kn.Circuit(kn.topology.fully_connect(3), "Conductance", slices=2, init="zeros", residual=(0, 1))
    x = torch.tensor([[1.0, -1.0]])
    v, _ = kn.simulate(circuit, x)
    torch.testing.assert_close(v, 2 * x)


def test_input_nodes_place_features():
    circuit = kn.Circuit(kn.topology.fully_connect(4), "Conductance", init="zeros", input_nodes=[3, 1])
    v, _ = kn.simulate(circuit, torch.tensor([[5.0, 7.0]]))
    assert v.tolist() == [[7.0, 0.0, 5.0]]


def test_trajectory_returns_waveforms_per_slice():
    circuit = small_circuit("ShiftTanh2", slices=2)
    x = torch.randn(3, 3)
    waves, _ = kn.trajectory(circuit, x, points_per_slice=11)
    assert [w[1].shape for w in waves] == [(11, 3, 3), (11, 3, 3)]
    torch.testing.assert_close(waves[0][1][0], x)
    torch.testing.assert_close(waves[0][1][-1], waves[1][1][0])
    v, _ = kn.simulate(circuit, x)
    torch.testing.assert_close(waves[1][1][-1], v, rtol=1e-4, atol=1e-4)


def test_blow_up_is_reported_with_slice_and_time():
    # Positive feedback: ShiftTanh2 cannot blow up (bounded), but a negative conductance can.
    piece = kn.Slice([[1], [0]], "Conductance", params=torch.tensor([[-80.0]]))
    circuit = kn.Circuit([kn.Slice(kn.topology.fully_connect(2), "Conductance", init="zeros"), piece], times=(0, 1, 12))
    with pytest.raises(SolverError, match=r"slice 1 \(t from 1 to 12\) (failed at t = |ended with)"):
        kn.simulate(circuit, torch.ones(1, 1), solver=kn.Solver(max_steps=200))


def test_too_many_steps_is_reported():
    circuit = small_circuit("ShiftTanh2", slices=1)
    with pytest.raises(SolverError, match=r"slice 0 .*needed more than max_steps=2 steps"):
        kn.simulate(circuit, torch.randn(2, 3), solver=kn.Solver(rtol=1e-9, atol=1e-9, max_steps=2))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "rk45"}, "unknown solver method 'rk45'; choose one of"),
        ({"rtol": -1e-3}, "rtol must be a positive number"),
        ({"atol": float("nan")}, "atol must be a positive number"),
        ({"method": "rk4"}, "fixed-step method 'rk4' needs a positive step_size"),
        ({"first_step": 0.0}, "first_step must be positive"),
        ({"max_steps": 0}, "max_steps must be a positive integer"),
    ],
)
def test_bad_solver_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        kn.Solver(**settings)


def test_bad_inputs_are_reported():
    circuit = small_circuit()
    with pytest.raises(ConfigError, match="inputs hold NaN or infinite values"):
        kn.simulate(circuit, torch.tensor([[float("nan"), 0.0, 0.0]]))
    with pytest.raises(ConfigError, match="inputs have 5 features but the first slice has only 3 state nodes"):
        kn.simulate(circuit, torch.zeros(2, 5))
    with pytest.raises(ConfigError, match=r"^gradient must be kn.Backprop\(\) or kn.Adjoint\(\), got 'adjoint'$"):
        kn.simulate(circuit, torch.zeros(2, 3), gradient="adjoint")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="floating point"):
        kn.simulate(circuit, torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"times": (0, 1, 1)}, r"times must increase strictly: slice 1 runs from 1.0 to 1.0"),
        ({"times": (0, 1)}, "times needs 3 boundaries for 2 slices"),
        ({"fill": "ones"}, "unknown fill 'ones'"),
        ({"residual": (1, 1)}, r"residual must be \(i, j\) with 0 <= i < j < 2"),
        ({"input_nodes": [0]}, "input node 0 is ground"),
        ({"input_nodes": [7]}, "input node 7 is outside"),
    ],
)
def test_bad_circuit_settings(kwargs, message):
    with pytest.raises(kn.KirchhoffError, match=message):
        kn.Circuit(kn.topology.fully_connect(4), slices=2, **kwargs)


def test_adjoint_seminorm_keeps_gradients_and_saves_evaluations():
    # Over a few circuits: on one, where the last step lands decides a step either way.
    backward_nfe = {False: 0, True: 0}
    for _ in range(3):
        circuit = small_circuit("ShiftTanh2").double()
        x = torch.randn(5, 3, dtype=torch.float64)
        grads = {}
        for seminorm in (False, True):
            circuit.zero_grad()
            solver = kn.Solver(rtol=1e-8, atol=1e-8)
            v, stats = kn.simulate(circuit, x, solver=solver, gradient=kn.Adjoint(seminorm=seminorm))
            (v**2).sum().backward()
            grads[seminorm] = torch.cat([p.grad.flatten() for p in circuit.parameters()])
            backward_nfe[seminorm] += sum(stats.nfe_backward)
        # Both solve the adjoint to 1e-8; the parameter adjoints differ by the tolerance at most.
        torch.testing.assert_close(grads[True], grads[False], rtol=1e-5, atol=1e-7)
    assert backward_nfe[True] < backward_nfe[False]


def _flow_circuit(num_nodes: int) -> kn.Circuit:
    edges = kn.topology.fully_connect(num_nodes) if num_nodes <= 6 else kn.topology.random_graph(num_nodes, 200, seed=1)
    return kn.Circuit(edges, "ShiftTanh2", num_nodes=num_nodes, slices=2, init="uniform").double()


FUSED_BACKPROP = ["affine", "fused-rk"]  # the default integrator on an affine family: one autograd node per slice
FUSED_ADJOINT = ["affine", "fused-rk", "closed-form adjoint"]  # known at the forward solve: it steps both


@pytest.mark.parametrize(
    ("num_nodes", "gradient", "kernel", "integrator", "forward", "after_backward"),
    [
        (4, kn.Backprop(), "auto", "auto", FUSED_BACKPROP, FUSED_BACKPROP),
        (4, kn.Adjoint(), "auto", "auto", FUSED_ADJOINT, FUSED_ADJOINT),
        (4, kn.Backprop(), "auto", "torchdiffeq", ["affine-vjp"], ["affine-vjp"]),
        (4, kn.Adjoint(), "auto", "torchdiffeq", ["affine"], ["affine", "closed-form adjoint"]),
        (4, kn.Backprop(), "gather", "auto", ["gather"], ["gather"]),  # no closed form: auto stays on torchdiffeq
        (4, kn.Adjoint(), "gather", "auto", ["gather"], ["gather"]),  # torchdiffeq's adjoint, autograd through gather
        (30, kn.Backprop(), "auto", "auto", FUSED_BACKPROP, FUSED_BACKPROP),
        (30, kn.Adjoint(), "auto", "auto", FUSED_ADJOINT, FUSED_ADJOINT),
        (30, kn.Backprop(), "auto", "torchdiffeq", ["affine-vjp"], ["affine-vjp"]),
        (30, kn.Adjoint(), "auto", "torchdiffeq", ["affine"], ["affine", "closed-form adjoint"]),
        (30, kn.Adjoint(), "gather", "auto", ["gather"], ["gather"]),
    ],
)
def test_solve_stats_say_which_kernel_paths_ran(num_nodes, gradient, kernel, integrator, forward, after_backward):
    circuit = _flow_circuit(num_nodes)
    x = torch.randn(6, num_nodes - 1, dtype=torch.float64)
    solver = kn.Solver(kernel=kernel, integrator=integrator)
    v, stats = kn.simulate(circuit, x, solver=solver, gradient=gradient)
    assert stats.kernels == [forward, forward]
    v.square().sum().backward()
    assert stats.kernels == [after_backward, after_backward]
    assert stats.to_dict()["kernels"] == stats.kernels


@pytest.mark.parametrize("num_nodes", [4, 30])  # dense and CSR operators
@pytest.mark.parametrize("gradient", [kn.Backprop(), kn.Adjoint()])
def test_every_kernel_gives_the_same_solve_and_gradient(num_nodes, gradient):
    circuit = _flow_circuit(num_nodes)
    x = torch.randn(6, num_nodes - 1, dtype=torch.float64)
    results = []
    for kernel in ("auto", "gather", "affine"):
        circuit.zero_grad()
        solver = kn.Solver(rtol=1e-9, atol=1e-9, kernel=kernel)
        v, _ = kn.simulate(circuit, x, solver=solver, gradient=gradient)
        v.square().sum().backward()
        results.append((v.detach(), [p.grad.clone() for p in circuit.parameters() if p.grad is not None]))
    for v, grads in results[1:]:
        torch.testing.assert_close(v, results[0][0], rtol=1e-10, atol=1e-12)
        for a, b in zip(grads, results[0][1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("solver", [kn.Solver(), kn.Solver(integrator="torchdiffeq"), kn.Solver("rk4", step_size=0.25)])
def test_an_empty_batch_gives_empty_results_with_gradients(solver):
    """As torch layers do. Adaptive solves read the NaN error norm of no values as a failed step and blamed NaN
    parameters; a fixed step always gave the empty result."""
    circuit = small_circuit("ShiftTanh2", slices=2)
    x = torch.zeros(0, 3, requires_grad=True)
    v, _ = kn.simulate(circuit, x, solver=solver)
    assert v.shape == (0, 3)
    v.sum().backward()
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in circuit.parameters())
    flow = kn.Flow(kn.Circuit(kn.topology.fully_connect(3), "ShiftTanh2"), solver)
    assert flow.log_prob(torch.zeros(0, 2)).shape == (0,)

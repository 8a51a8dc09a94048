"""TransistorTable: the spline's value, slope and curvature, its clamps, and circuits built from it."""

from __future__ import annotations

import math

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.devices import TransistorTable, resolve
from kirchhoffnet.devices.base import clamp_inward
from kirchhoffnet.errors import DeviceError
from kirchhoffnet.solve.simulate import recording_slice_ends

from ..circuit.test_kcl import autograd_trace
from ..conftest import check_table_derivatives

KNOTS = 41


def _bent_table() -> TransistorTable:
    """A table shaped like a short-channel transistor: off to 0.4 V, then g_m rising and falling (k < 0)."""
    gate = [1.8 * j / (KNOTS - 1) for j in range(KNOTS)]
    slopes = [max(v - 0.4, 0.0) * math.exp(-1.5 * v) * 3 for v in gate]
    return TransistorTable(slopes, supply_v=1.8, width_min=0.2, width_max=5.0, source={"test": "bent"})


def _level1(v_gs: torch.Tensor) -> torch.Tensor:
    """Level-1 drain current at V_DS = 0.1 V, V_T = 0.5 V, β = 8, the default table's law."""
    overdrive = v_gs - 0.5
    return torch.where(overdrive <= 0, 0.0, torch.where(overdrive < 0.1, 4 * overdrive**2, 0.8 * (overdrive - 0.05)))


def test_the_default_table_is_the_level1_law_exactly_and_one_at_the_supply():
    device = TransistorTable()
    gate = torch.linspace(-1, 3, 4001, dtype=torch.float64)
    torch.testing.assert_close(device.activation(gate, inplace=False), _level1(gate), rtol=0, atol=1e-14)
    assert float(device.activation(torch.tensor(1.8, dtype=torch.float64), False)) == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize("device", [TransistorTable(), _bent_table()], ids=["level1", "bent"])
def test_slope_and_curvature_from_the_value_match_finite_differences(device):
    u = torch.rand(2000, dtype=torch.float64) * 2.6 - 0.4  # cut-off, the table and past the supply
    u, out, slope = check_table_derivatives(device, u, slope_tol=(1e-7, 1e-8), curvature_tol=(1e-6, 1e-6))
    assert bool((slope >= 0).all()) and bool((slope[u < 0] == 0).all())
    if device.source == {"test": "bent"}:
        assert bool((device.curvature(out, slope) < 0).any())  # the falling transconductance is exercised


def test_slope_of_the_value_is_differentiable_in_cut_off():
    """The divergence's backward pass differentiates σ'(σ(u)), also where the transistor is off."""
    device = _bent_table()
    u = torch.tensor([-0.3, 0.1, 0.7, 1.2, 2.5], dtype=torch.float64, requires_grad=True)
    out = device.activation(u, inplace=False)
    slope = device.slope(out)
    (grad,) = torch.autograd.grad(slope.sum(), u)
    torch.testing.assert_close(grad, device.curvature(out.detach(), slope.detach()), rtol=1e-9, atol=1e-12)


def test_clamps_are_the_realisable_widths_and_biases():
    device = TransistorTable(supply_v=1.8, width_min=0.1, width_max=10.0)
    p = torch.tensor([[-50.0, 0.01, 3.0], [-1.0, 5.0, 0.7]], dtype=torch.float64)
    a, b, c, post = device.coefficients(p)
    assert b is None
    torch.testing.assert_close(a, torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(c, torch.tensor([0.0, 1.8, 0.7], dtype=torch.float64))
    torch.testing.assert_close(post, torch.tensor([10.0, 0.1, 3.0], dtype=torch.float64))


def test_a_clamp_passes_only_the_gradients_that_lead_back_inside():
    """On its bound a parameter keeps the gradient that would raise it again (81.9 % of the Fashion-MNIST
    classifier's widths had trained onto the floor, where torch's clamp left them none), never one that pushes
    it further out; the value is the plain clamp, under autograd and torch.func alike."""
    value = torch.tensor([-1.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    out = clamp_inward(value, 0.0, 2.0)
    torch.testing.assert_close(out, value.detach().clamp(0.0, 2.0), rtol=0, atol=0)
    for upstream, expected in (([1.0, 1.0, 1.0], [0.0, 1.0, 1.0]), ([-1.0, -2.0, -1.0], [-1.0, -2.0, 0.0])):
        (grad,) = torch.autograd.grad(out, value, torch.tensor(upstream, dtype=torch.float64), retain_graph=True)
        assert grad.tolist() == expected
    (grad,) = torch.autograd.grad(clamp_inward(value, 0.0, None).sum(), value)  # no ceiling: 3 is inside
    assert grad.tolist() == [0.0, 1.0, 1.0]
    per_row = torch.func.vmap(torch.func.grad(lambda v: -clamp_inward(v, 0.0, 2.0).sum()))
    assert per_row(value.detach()[:, None]).flatten().tolist() == [-1.0, -1.0, 0.0]
    with torch.no_grad():
        assert clamp_inward(value, 0.0, 2.0).tolist() == [0.0, 0.5, 2.0]


def test_a_width_trained_onto_its_floor_can_grow_again():
    """Below width_min the table conducts as width_min; a loss that a wider transistor would lower reaches the
    width (by its gradient at width_min itself), one that a narrower transistor would lower does not."""
    device = TransistorTable(supply_v=1.8, width_min=0.25, width_max=10.0)
    gate = torch.linspace(0.0, 1.8, 19, dtype=torch.float64)
    zero = torch.zeros_like(gate)
    for width in (0.05, -0.05):
        p = torch.tensor([width, 0.6], dtype=torch.float64, requires_grad=True)
        at_floor = torch.tensor([math.copysign(0.25, width), 0.6], dtype=torch.float64, requires_grad=True)
        grown = []
        for sign in (1.0, -1.0):
            (grad,) = torch.autograd.grad(sign * device.current(gate, zero, p).sum(), p)
            (reference,) = torch.autograd.grad(sign * device.current(gate, zero, at_floor).sum(), at_floor)
            wider = math.copysign(1.0, width) * float(reference[0]) < 0  # descent widens |θ1|
            assert float(grad[0]) == (pytest.approx(float(reference[0])) if wider else 0.0), (width, sign)
            grown.append(wider)
        assert sorted(grown) == [False, True]  # one loss of the pair widens the transistor, the other would not


@pytest.mark.parametrize("family", ["TransistorTable", "MosRelu"])
def test_clamp_gradient_zero_is_torchs_clamp_and_only_a_setting_off_the_default_is_saved(family):
    """``zero`` reproduces the runs trained before `clamp_inward` (no gradient past a clamp, either way); the
    default is not written into specs, so the checkpoints saved before the setting existed load with it."""
    clamps = {"width_min": 0.25} if family == "TransistorTable" else {"gain_min": 0.25, "gain_max": 4.0}
    inward, zero = (resolve({"name": family, **clamps, **rule}) for rule in ({}, {"clamp_gradient": "zero"}))
    assert "clamp_gradient" not in inward.spec() and zero.spec()["clamp_gradient"] == "zero"
    assert resolve(zero.spec()) == zero != inward
    drop = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    grads = {}
    for device in (inward, zero):
        p = torch.tensor([0.05, 0.6], dtype=torch.float64, requires_grad=True)
        current = device.current(drop, torch.zeros_like(drop), p).sum()
        grads[device.spec().get("clamp_gradient", "inward")] = [
            float(torch.autograd.grad(sign * current, p, retain_graph=True)[0][0]) for sign in (1.0, -1.0)
        ]
    assert grads["zero"] == [0.0, 0.0] and sorted(g == 0.0 for g in grads["inward"]) == [False, True]
    with pytest.raises(DeviceError, match="clamp_gradient must be one of inward, zero, got 'up'"):
        resolve({"name": family, "clamp_gradient": "up"})


def test_current_and_slopes_of_a_measured_shape_match_autograd():
    device = _bent_table()
    vs, vd = (torch.rand(6, 9, dtype=torch.float64, requires_grad=True) * 2 for _ in range(2))
    # Inside the clamps (past them the gradient is clamp_inward's by design, not the finite difference).
    width = (torch.rand(6, 1) * 4.2 + 0.3) * torch.where(torch.rand(6, 1) < 0.5, -1.0, 1.0)
    p = torch.stack([width, torch.rand(6, 1) * 1.6 + 0.1]).double().requires_grad_(True)
    _, d_src, d_dst = device.current_and_slopes(vs, vd, p)
    g_src, g_dst = torch.autograd.grad(device.current(vs, vd, p).sum(), (vs, vd))
    torch.testing.assert_close(d_src, g_src, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d_dst, g_dst, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, b, q: device.current(a, b, q), (vs, vd, p))


def test_past_the_last_knot_the_gate_is_clamped_and_the_current_flat():
    """A straight line past the table would claim current a transistor does not carry (BSIM4's falls past ~3 V)."""
    device = _bent_table()
    top = device.gate_max_v
    u = torch.tensor([top, top + 0.01, top + 1.0, top + 10.0], dtype=torch.float64)
    out = device.activation(u, inplace=False)
    assert float(device.slopes[-1]) > 0  # the table still rises at its last knot: a line past it would too
    torch.testing.assert_close(out, out[:1].expand(4), rtol=0, atol=0)
    slope = device.slope(out[1:])
    assert bool((slope == 0).all()) and bool((device.curvature(out[1:], slope) == 0).all())


def test_spice_expression_is_the_table():
    device = _bent_table()
    text = device.spice_activation("u")
    for value in torch.linspace(-0.5, 4.5, 161, dtype=torch.float64).tolist():  # past the last knot (3.6 V) too
        got = eval(text, {"__builtins__": {}}, {"max": max, "min": min, "u": value})
        expected = float(device.activation(torch.tensor(value, dtype=torch.float64), inplace=False))
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_bad_tables_are_refused_in_one_line():
    with pytest.raises(DeviceError, match="the first 0"):
        TransistorTable([0.1, 0.2])
    with pytest.raises(DeviceError, match="non-negative"):
        TransistorTable([0.0, -0.2, 0.3])
    with pytest.raises(DeviceError, match="non-negative"):
        TransistorTable([0.0, float("nan")])
    with pytest.raises(DeviceError, match="supply_v must be a positive voltage"):
        TransistorTable(supply_v=0)
    with pytest.raises(DeviceError, match="0 < width_min <= width_max"):
        TransistorTable(width_min=2.0, width_max=1.0)


def _circuit(device: TransistorTable) -> kn.Circuit:
    """Conducting transistors: gate biases inside the supply, widths of either polarity inside the limits."""
    circuit = kn.Circuit(kn.topology.fully_connect(4, (2, 2)), device, slices=2, times=(0.0, 0.5, 1.0))
    with torch.no_grad():
        for piece in circuit.slices:
            width = torch.rand(piece.num_edges) * 2 + 0.5
            piece.params[0] = width * torch.where(torch.rand(piece.num_edges) < 0.5, -1.0, 1.0)
            piece.params[1] = torch.rand(piece.num_edges) * 0.8 + 0.4
    return circuit.double()


def test_a_circuit_has_the_exact_divergence_and_true_parameter_gradients():
    circuit = _circuit(_bent_table())
    piece = circuit.slice(0)
    v = torch.randn(5, 3, dtype=torch.float64) * 0.5
    torch.testing.assert_close(piece.divergence(0.0, v), autograd_trace(piece, v), rtol=1e-10, atol=1e-10)
    solver = {"method": "rk4", "step_size": 0.05}
    x = torch.randn(4, 3, dtype=torch.float64) * 0.5

    def loss() -> torch.Tensor:
        out, trace, _ = kn.simulate_log_density(circuit, x, solver=solver)
        return (out**2).sum() + trace.sum()

    params = circuit.slice(1).params
    loss().backward()
    assert params.grad is not None
    for index in [(0, 0), (1, 3), (0, 7), (1, 10)]:  # central differences on a few parameters
        with torch.no_grad():
            params[index] += 1e-6
            up = float(loss())
            params[index] -= 2e-6
            down = float(loss())
            params[index] += 1e-6
        assert float(params.grad[index]) == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("points", [2, 9])
def test_a_solve_lets_a_floored_width_grow_only_when_the_whole_solve_wants_it(points):
    """Through a whole solve (9 points: torchdiffeq with one closed-form node per evaluation; 2: the fused
    integrator) the width below its floor gets the gradient it would have at the floor exactly when descent
    widens it: the decision is taken on the sum over every evaluation, not on each one."""
    torch.manual_seed(0)  # edge 3 of slice 0 then conducts (positive polarity)
    circuit = _circuit(_bent_table())
    x = torch.rand(6, 3, dtype=torch.float64) * 0.8
    solver = kn.Solver(method="dopri5", rtol=1e-9, atol=1e-9)
    params = circuit.slice(0).params

    def gradient(width: float, sign: float) -> torch.Tensor:
        with torch.no_grad():
            params[0, 3] = width
        params.grad = None
        with recording_slice_ends(points) as ends:
            kn.simulate(circuit, x, solver=solver, gradient=kn.Backprop())
        (sign * torch.stack([e.sum() for e in ends]).sum()).backward()
        return params.grad[0, 3].clone()

    widened = []
    for sign in (1.0, -1.0):
        at_floor = gradient(0.2, sign)  # the table's width_min
        below = gradient(0.05, sign)
        widen = float(at_floor) < 0  # descent raises θ1
        assert float(below) == (pytest.approx(float(at_floor), rel=1e-9) if widen else 0.0), sign
        widened.append(widen)
    assert sorted(widened) == [False, True]


def test_checkpoint_round_trip_rebuilds_the_table(tmp_path):
    circuit = _circuit(_bent_table())
    x = torch.randn(3, 3, dtype=torch.float64) * 0.5
    expected, _ = kn.simulate(circuit, x)
    loaded = kn.load(kn.save(circuit, tmp_path / "table.pt"))
    assert loaded.slice(0).device_family == circuit.slice(0).device_family
    assert resolve(circuit.slice(0).device_family.spec()).slopes == _bent_table().slopes
    got, _ = kn.simulate(loaded.double(), x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_the_pieces_kept_from_the_last_activation_are_never_stale():
    """σ' of the activation's own output reuses its pieces; a changed or another tensor is searched afresh."""
    device = _bent_table()
    u = torch.rand(50, dtype=torch.float64) * 2.4
    out = device.activation(u.clone(), inplace=True)
    expected = device.slope(out.clone())  # another tensor: searched
    torch.testing.assert_close(device.slope(out), expected, rtol=0, atol=0)
    out.mul_(0.5)  # in place: its version changes, the kept pieces no longer apply
    torch.testing.assert_close(device.slope(out), device.slope(out.clone()), rtol=0, atol=0)
    assert not torch.equal(device.slope(out), expected)


def test_a_nan_voltage_is_a_nan_current_not_an_index_out_of_range():
    """floor(NaN) cast to an integer is garbage: the piece index must not be, so the solver sees the NaN."""
    u = torch.tensor([math.nan, -math.inf, 0.0, 1.0], dtype=torch.float64)
    out = TransistorTable().activation(u.clone(), inplace=False)
    assert math.isnan(out[0]) and out[1] == 0.0 and torch.isfinite(out[2:]).all()

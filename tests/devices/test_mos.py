"""MosRelu: the level-1 transistor law behind it, its ReLU limit, its smoothness."""

from __future__ import annotations

import math

import pytest
import torch

from kirchhoffnet.devices import MosRelu, resolve
from kirchhoffnet.errors import DeviceError


def _shichman_hodges(v_gs: torch.Tensor, threshold: float, beta: float, v_ds: float) -> torch.Tensor:
    """Level-1 drain current at fixed V_DS: cut-off, saturation, triode."""
    overdrive = v_gs - threshold
    saturation = beta * overdrive**2 / 2
    triode = beta * v_ds * (overdrive - v_ds / 2)
    return torch.where(overdrive <= 0, torch.zeros_like(v_gs), torch.where(overdrive < v_ds, saturation, triode))


@pytest.mark.parametrize(("gain", "shift"), [(1.0, 0.2), (-0.7, 0.3), (2.5, -1.0), (0.05, 0.01)])
def test_current_is_the_biased_transistor(gain, shift):
    """The gate V_T + sgn(θ1)·Δv + θ2/|θ1| + V_DS/2 and β·V_DS = |θ1| give the device current."""
    v_ds, threshold = 0.2, 0.45
    device = MosRelu(drain_voltage_v=v_ds)
    drop = torch.linspace(-3, 3, 601, dtype=torch.float64)
    p = torch.tensor([gain, shift], dtype=torch.float64)
    current = device.current(drop, torch.zeros_like(drop), p)
    gate = threshold + (1 if gain > 0 else -1) * drop + shift / abs(gain) + v_ds / 2
    expected = _shichman_hodges(gate, threshold, abs(gain) / v_ds, v_ds)
    torch.testing.assert_close(current, expected, rtol=1e-12, atol=1e-12)  # the same algebra, to rounding


def test_relu_outside_the_rounded_corner_and_departure_delta_over_8():
    gain, shift, v_ds = 1.5, -0.3, 0.1
    device = MosRelu(v_ds)
    drop = torch.linspace(-2, 2, 4001, dtype=torch.float64)
    u = gain * drop + shift
    current = device.current(drop, torch.zeros_like(drop), torch.tensor([gain, shift], dtype=torch.float64))
    delta = gain * v_ds
    outside = u.abs() >= delta / 2
    torch.testing.assert_close(current[outside], torch.relu(u[outside]), rtol=0, atol=1e-13)
    departure = (current - torch.relu(u)).abs().max()
    # The largest departure is at u = 0: (δ/2)²/(2δ) = δ/8; the grid puts a point within 1e-3 V of it.
    assert float(departure) == pytest.approx(delta / 8, rel=1e-2)


def test_approaches_relu_as_the_drain_bias_shrinks():
    drop = torch.linspace(-1, 1, 201, dtype=torch.float64)
    p = torch.tensor([0.8, 0.1], dtype=torch.float64)
    errors = [
        float((MosRelu(v).current(drop, torch.zeros_like(drop), p) - torch.relu(0.8 * drop + 0.1)).abs().max())
        for v in (0.4, 0.04, 0.004)
    ]
    assert errors[0] > 9 * errors[1] > 81 * errors[2]  # linear in V_DS (δ/8 = 0.1·V_DS here)


def test_zero_gain_is_a_constant_current_with_finite_gradients():
    device = MosRelu()
    drop = torch.linspace(-1, 1, 5, dtype=torch.float64)
    p = torch.tensor([0.0, 0.3], dtype=torch.float64, requires_grad=True)
    current = device.current(drop, torch.zeros_like(drop), p)
    torch.testing.assert_close(current, torch.full_like(drop, 0.3), rtol=0, atol=1e-10)  # relu(θ2), up to 1e-12·V_DS/2
    (grad,) = torch.autograd.grad(current.sum(), p)
    assert bool(torch.isfinite(grad).all())


def test_gradient_in_the_gain_is_the_drop_in_triode():
    """∂i/∂θ1 = Δv where i = θ1·Δv + θ2 (triode), although θ1 enters through |θ1| and θ2/|θ1|."""
    device = MosRelu(0.1)
    drop = torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64)
    p = torch.tensor([-0.9, 0.5], dtype=torch.float64, requires_grad=True)
    current = device.current(drop, torch.zeros_like(drop), p)
    on = current > 0.1  # well inside the triode region
    grads = [torch.autograd.grad(current[k], p, retain_graph=True)[0] for k in range(3) if on[k]]
    for k, g in zip([k for k in range(3) if on[k]], grads, strict=True):
        torch.testing.assert_close(g, torch.tensor([float(drop[k]), 1.0], dtype=torch.float64))


def test_spec_round_trip_and_bad_bias():
    device = resolve({"name": "MosRelu", "drain_voltage_v": 0.05})
    assert isinstance(device, MosRelu) and device.drain_voltage_v == 0.05
    assert device.spec() == {"name": "MosRelu", "drain_voltage_v": 0.05}
    with pytest.raises(DeviceError, match="drain_voltage_v must be a positive voltage, got 0"):
        MosRelu(0)


def test_slope_gradient_is_the_curvature_and_finite_in_cut_off():
    """The divergence's backward pass differentiates the slope, also where the device is off."""
    device = MosRelu(0.1)
    w = torch.tensor([-1.0, 0.0, 0.25, 0.75, 1.5], dtype=torch.float64, requires_grad=True)
    out = device.activation(w, inplace=False)
    slope = device.slope(out)
    torch.testing.assert_close(slope, torch.tensor([0.0, 0.0, 0.25, 0.75, 1.0], dtype=torch.float64))
    (grad,) = torch.autograd.grad(slope.sum(), w)
    curvature = device.curvature(out, slope)
    torch.testing.assert_close(grad, curvature)  # σ'' = 1 on the parabola only, rounding aside
    torch.testing.assert_close(curvature, torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64))


def test_gain_clamps_hold_the_transistor_within_its_buildable_widths():
    """|θ1| below gain_min conducts as gain_min, above gain_max as gain_max; there the gradient reaches θ1 only
    when descent would carry |θ1| back inside (`clamp_inward`)."""
    device = MosRelu(0.1, gain_min=0.2, gain_max=2.0)
    drop = torch.linspace(-1, 1, 41, dtype=torch.float64)
    zero = torch.zeros_like(drop)
    for gain, held in ((0.01, 0.2), (-0.05, -0.2), (5.0, 2.0), (0.7, 0.7)):
        p = torch.tensor([gain, 0.1], dtype=torch.float64, requires_grad=True)
        current = device.current(drop, zero, p)
        expected = MosRelu(0.1).current(drop, zero, torch.tensor([held, 0.1], dtype=torch.float64))
        torch.testing.assert_close(current, expected, rtol=1e-12, atol=1e-12)
        at_held = torch.tensor([held, 0.1], dtype=torch.float64, requires_grad=True)
        for sign in (1.0, -1.0):
            (grad,) = torch.autograd.grad(sign * current.sum(), p, retain_graph=True)
            (free,) = torch.autograd.grad(sign * MosRelu(0.1).current(drop, zero, at_held).sum(), at_held)
            pull = math.copysign(1.0, gain) * float(free[0])  # d loss / d|θ1| at the held gain
            inward = held == gain or (pull < 0 if abs(gain) < 0.2 else pull > 0)
            assert float(grad[0]) == (pytest.approx(float(free[0])) if inward else 0.0), (gain, sign)
    assert device.spec() == {"name": "MosRelu", "drain_voltage_v": 0.1, "gain_min": 0.2, "gain_max": 2.0}
    assert resolve(device.spec()).spec() == device.spec()
    assert MosRelu(0.1).spec() == {"name": "MosRelu", "drain_voltage_v": 0.1}  # runs saved unclamped load alike
    with pytest.raises(DeviceError, match=r"0 <= gain_min <= gain_max, got 3\.0 and 2\.0"):
        MosRelu(0.1, gain_min=3.0, gain_max=2.0)

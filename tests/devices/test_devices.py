"""Device families: analytic slopes against autograd, registry, scratch semantics."""

from __future__ import annotations

import math

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.circuit.slice import INITIALIZERS
from kirchhoffnet.devices import Device, TransistorTable, available, resolve
from kirchhoffnet.errors import DeviceError

FAMILIES = available()
EXPECTED = {
    "ShiftTanh2": lambda vs, vd, p: torch.tanh(p[0] * vs + p[1] * vd + p[2]),
    "ShiftTanh1": lambda vs, vd, p: torch.tanh(p[1] * (vs - vd) + p[0]),
    "ShiftRelu1": lambda vs, vd, p: p[1] * torch.relu(vs - vd - p[0]),
    "ShiftLeakyRelu1": lambda vs, vd, p: p[1] * torch.nn.functional.leaky_relu(vs - vd - p[0]),
    "ShiftRelu2": lambda vs, vd, p: torch.relu(p[0] * vs + p[1] * vd + p[2]),
    "ShiftLeakyRelu2": lambda vs, vd, p: torch.nn.functional.leaky_relu(p[0] * vs + p[1] * vd + p[2]),
    "Conductance": lambda vs, vd, p: p[0] * (vs - vd),
}


def _inputs(family: Device, shape=(7, 5)):
    vs = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    vd = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    p = torch.randn(family.num_params, shape[0], 1, dtype=torch.float64, requires_grad=True)
    return vs, vd, p


def test_every_paper_family_is_registered():
    assert set(EXPECTED) <= set(FAMILIES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_current_matches_the_paper_formula(name):
    family = resolve(name)
    vs, vd, p = _inputs(family)
    # Tolerance: tanh is evaluated as 2·sigmoid(2u) − 1, exact to float64 rounding.
    torch.testing.assert_close(family.current(vs, vd, p), EXPECTED[name](vs, vd, p), rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", FAMILIES)
def test_analytic_slopes_match_autograd(name):
    family = resolve(name)
    vs, vd, p = _inputs(family)
    current, d_src, d_dst = family.current_and_slopes(vs, vd, p)
    g_src, g_dst = torch.autograd.grad(family.current(vs, vd, p).sum(), (vs, vd))
    # Each current depends only on its own (vs, vd) entry, so the gradient of the sum is the slope.
    torch.testing.assert_close(d_src.expand_as(vs), g_src, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d_dst.expand_as(vd), g_dst, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(current, family.current(vs, vd, p))


@pytest.mark.parametrize("name", FAMILIES)
def test_gradcheck_in_parameters_and_voltages(name):
    family = resolve(name)
    vs, vd, p = _inputs(family, shape=(3, 2))
    # Keep ReLU kinks away from the finite-difference stencil.
    with torch.no_grad():
        vs += 0.05 * torch.sign(vs)
    assert torch.autograd.gradcheck(lambda a, b, q: family.current(a, b, q), (vs, vd, p))


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("with_slopes", [False, True])
def test_scratch_mode_gives_the_same_values(name, with_slopes):
    family = resolve(name)
    vs, vd, p = (t.detach() for t in _inputs(family))
    method = family.current_and_slopes if with_slopes else family.current
    reference = method(vs.clone(), vd.clone(), p)
    with torch.no_grad():
        fast = method(vs.clone(), vd.clone(), p, scratch=True)
    pairs = zip(reference, fast, strict=True) if with_slopes else [(reference, fast)]
    for expected, got in pairs:
        torch.testing.assert_close(got.expand_as(expected), expected, rtol=1e-13, atol=1e-13)


def test_scratch_is_refused_while_autograd_records():
    family = resolve("ShiftTanh2")
    vs, vd, p = _inputs(family)
    before = vs.detach().clone()
    family.current(vs, vd, p, scratch=True).sum().backward()
    torch.testing.assert_close(vs.detach(), before)
    assert p.grad is not None


def test_resolve_accepts_names_specs_and_instances():
    assert resolve("shifttanh2") == resolve("ShiftTanh2")
    leaky = resolve({"name": "ShiftLeakyRelu1", "negative_slope": 0.2})
    assert leaky.negative_slope == 0.2
    assert resolve(leaky) is leaky
    assert resolve(leaky.spec()) == leaky


def test_unknown_device_lists_the_choices():
    with pytest.raises(DeviceError, match=r"unknown device family 'tanh3'; choose one of: .*ShiftTanh2"):
        resolve("tanh3")


def test_bad_device_settings_are_reported():
    with pytest.raises(DeviceError, match="bad settings"):
        resolve({"name": "ShiftTanh2", "gain": 3})
    with pytest.raises(DeviceError, match=r"negative_slope must lie in \[0, 1\)"):
        resolve({"name": "ShiftLeakyRelu2", "negative_slope": 1.5})


def test_a_new_family_is_one_class():
    from kirchhoffnet.devices import AffineActivation

    class _Cubic(AffineActivation):
        param_names = ("gain",)

        def activation(self, u, inplace):
            return u.pow_(3) if inplace else u**3

        def slope(self, out):
            return 3 * out.abs().pow(2 / 3)  # 3u² written through out = u³

        def coefficients(self, p):
            return p[0], None, None, None

    try:
        assert resolve("_cubic").num_params == 1
    finally:
        Device.registry.pop("_Cubic")


CLAMPED = {
    "TransistorTable": {"name": "TransistorTable", "supply_v": 1.0, "width_min": 0.25, "width_max": 4.0},
    "MosRelu with gain clamps": {"name": "MosRelu", "gain_min": 0.832, "gain_max": 13.3},
}


def _clamp_ranges(device: Device) -> list[tuple[float, float, bool]]:
    """(low, high, of the magnitude) per parameter row: the range its law clamps it to."""
    if device.name == "TransistorTable":
        return [(device.width_min, device.width_max, True), (0.0, device.supply_v, False)]
    return [(device.gain_min, device.gain_max, True), (-math.inf, math.inf, False)]


@pytest.mark.parametrize("init", ["kaiming", "gauss", "xavier", "uniform", "ones"])
@pytest.mark.parametrize("spec", CLAMPED.values(), ids=list(CLAMPED))
def test_a_clamped_family_starts_strictly_inside_its_clamps_with_every_gradient_nonzero(spec, init):
    """Issue 23: kaiming drew every table width below its floor, where the clamp's gradient is zero."""
    torch.manual_seed(0)
    edges = kn.topology.mix_connect(1, 5, 5, 3, 6, (1, 1))
    piece = kn.Slice(edges, spec, init=init).double()
    params = piece.params.detach()
    for row, (low, high, magnitude) in zip(params, _clamp_ranges(piece.device_family), strict=True):
        values = row.abs() if magnitude else row
        assert low < values.min() and values.max() < high, (init, low, high, values.min(), values.max())
    # every clamped coefficient passes its parameter's gradient (at a clamp it would be zero)
    coefficients = piece.device_family.coefficients(piece.params)
    clamped = sum(c.sum() for c in coefficients[2:] if c is not None)
    (grad,) = torch.autograd.grad(clamped, piece.params)
    assert (grad[0] != 0).all() and (grad[1] != 0).all(), (grad == 0).sum(dim=1)
    if spec["name"] == "TransistorTable":  # and every edge conducts at some voltages within the supply
        v = torch.rand(256, piece.num_state, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        (grad,) = torch.autograd.grad(piece.currents(v).square().sum(), piece.params)
        assert (grad != 0).all(), (grad == 0).sum(dim=1)


@pytest.mark.parametrize("name", [*FAMILIES, {"name": "MosRelu", "drain_voltage_v": 0.05}])
@pytest.mark.parametrize("init", ["kaiming", "gauss", "zeros"])
def test_an_unclamped_family_starts_from_the_initialisers_draw_itself(name, init):
    spec = resolve(name)
    if spec.name == "TransistorTable":
        return  # clamped: the test above
    edges = kn.topology.fully_connect(3, (2, 2))
    torch.manual_seed(3)
    piece = kn.Slice(edges, spec, init=init)
    torch.manual_seed(3)
    draw = torch.empty(spec.num_params, edges.shape[1])
    INITIALIZERS[init](draw)
    assert torch.equal(piece.params.detach(), draw)


def test_the_table_maps_the_draw_keeping_its_sign_and_order():
    device = TransistorTable(supply_v=1.0, width_min=0.25, width_max=4.0)
    draw = torch.tensor([[-3.0, -0.01, 0.0, 0.01, 0.02, 5.0], [-2.0, -0.01, 0.0, 0.01, 0.02, 2.0]])
    width, bias = device.initial(draw)
    assert torch.equal(torch.sign(width), torch.tensor([-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]))
    assert (width.abs()[2:].diff() > 0).all() and (bias.diff() > 0).all()
    torch.testing.assert_close(width.abs()[1:5], torch.tensor([0.26, 0.25, 0.26, 0.27]), atol=1e-5, rtol=0)
    torch.testing.assert_close(bias[1:5], torch.tensor([0.49, 0.5, 0.51, 0.52]), atol=1e-4, rtol=0)
    assert width.abs().max() < 4.0 and bias.min() > 0.0 and bias.max() < 1.0


def test_init_inside_clamps_false_keeps_the_raw_draw_that_earlier_runs_were_trained_from():
    edges = kn.topology.fully_connect(3, (2, 2))
    spec = CLAMPED["TransistorTable"]
    torch.manual_seed(5)
    raw = kn.Slice(edges, spec, init="kaiming", init_inside_clamps=False).params.detach()
    torch.manual_seed(5)
    draw = torch.empty(2, edges.shape[1])
    INITIALIZERS["kaiming"](draw)
    assert torch.equal(raw, draw)
    torch.manual_seed(5)
    assert torch.equal(kn.Slice(edges, spec, init="kaiming").params.detach(), resolve(spec).initial(draw))

"""The circuit's right-hand side against physics: KCL, ground, capacitance, exact divergence."""

from __future__ import annotations

import pytest
import torch

import kirchhoffnet as kn
import kirchhoffnet.circuit._kcl as kcl
from kirchhoffnet.devices import available

from ..conftest import small_circuit

FAMILIES = available()


def _manual_rhs(piece: kn.Slice, v: torch.Tensor) -> torch.Tensor:
    """dv/dt written edge by edge from Kirchhoff's current law, ground at 0 V."""
    full = torch.cat([torch.zeros(v.shape[0], 1, dtype=v.dtype), v], dim=1)
    out = torch.zeros_like(full)
    p = piece.params.to(v.dtype)
    for e, (s, d) in enumerate(piece.edge_index.T.tolist()):
        i = piece.device_family.current(full[:, s], full[:, d], p[:, e])
        out[:, d] += i
        out[:, s] -= i
    return out[:, 1:] / piece.capacitance.to(v.dtype)


@pytest.mark.parametrize("device", FAMILIES)
@pytest.mark.parametrize("num_nodes", [4, 40])  # dense fused path and gather path
def test_rhs_is_kirchhoffs_current_law(device, num_nodes):
    edges = kn.topology.random_graph(num_nodes, 6 * num_nodes, seed=1)
    cap = torch.rand(num_nodes - 1) + 0.5
    piece = kn.Slice(edges, device, capacitance=cap, init="gauss").double()
    with torch.no_grad():
        piece.params.normal_()
    v = torch.randn(5, num_nodes - 1, dtype=torch.float64)
    torch.testing.assert_close(piece(0.0, v), _manual_rhs(piece, v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", FAMILIES)
def test_charge_is_conserved_except_through_ground(device):
    # Σ_n C_n dv_n/dt = (current drawn from ground) − (current pushed into ground).
    edges = kn.topology.random_graph(30, 200, seed=2)
    cap = torch.rand(29, dtype=torch.float64) + 0.1
    piece = kn.Slice(edges, device, capacitance=cap, init="gauss").double()
    with torch.no_grad():
        piece.params.normal_()
    v = torch.randn(8, 29, dtype=torch.float64)
    stored = (piece(0.0, v) * piece.capacitance).sum(dim=1)
    currents = piece.currents(v)
    src, dst = piece.edge_index
    through_ground = currents[:, src == 0].sum(1) - currents[:, dst == 0].sum(1)
    torch.testing.assert_close(stored, through_ground, rtol=1e-10, atol=1e-10)


def test_a_circuit_without_ground_edges_conserves_total_charge():
    edges = kn.topology.fully_connect(6, (1, 1), include_ground=False)
    piece = kn.Slice(edges, "ShiftTanh2", init="gauss").double()
    v = torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(piece(0.0, v).sum(1), torch.zeros(4, dtype=torch.float64), atol=1e-13, rtol=0)


def test_relabelling_state_nodes_permutes_the_dynamics():
    # Ground is special; the other nodes are interchangeable: f(P v) = P f(v) under relabelling.
    edges = kn.topology.random_graph(12, 60, seed=4)
    piece = kn.Slice(edges, "ShiftTanh2", init="gauss").double()
    perm = torch.randperm(11) + 1
    relabel = torch.cat([torch.zeros(1, dtype=torch.long), perm])  # ground stays 0
    moved = kn.Slice(relabel[edges], "ShiftTanh2", params=piece.params.detach()).double()
    v = torch.randn(3, 11, dtype=torch.float64)
    moved_v = torch.zeros_like(v)
    moved_v[:, perm - 1] = v
    torch.testing.assert_close(moved(0.0, moved_v)[:, perm - 1], piece(0.0, v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", FAMILIES)
@pytest.mark.parametrize("num_nodes", [3, 30])
def test_analytic_divergence_equals_the_jacobian_trace(device, num_nodes):
    edges = kn.topology.random_graph(num_nodes, 5 * num_nodes, seed=5)
    cap = torch.rand(num_nodes - 1, dtype=torch.float64) + 0.5
    piece = kn.Slice(edges, device, capacitance=cap).double()
    with torch.no_grad():
        piece.params.normal_()
    v = torch.randn(4, num_nodes - 1, dtype=torch.float64)
    torch.testing.assert_close(piece.divergence(0.0, v), autograd_trace(piece, v), rtol=1e-10, atol=1e-10)


def autograd_trace(field, v: torch.Tensor) -> torch.Tensor:
    """tr(∂f/∂v) by one reverse-mode sweep per node: the reference the analytic trace replaces."""
    v = v.detach().requires_grad_(True)
    out = field(0.0, v)
    return sum(torch.autograd.grad(out[:, i].sum(), v, retain_graph=True)[0][:, i] for i in range(v.shape[1]))


def test_divergence_matches_functorch_jacobian_on_small_circuits():
    piece = kn.Slice(kn.topology.fully_connect(4, (2, 2)), "ShiftTanh1").double()  # dense path
    v = torch.randn(3, 3, dtype=torch.float64)
    jac = torch.func.vmap(torch.func.jacrev(lambda x: piece(0.0, x[None])[0]))(v)
    torch.testing.assert_close(piece.divergence(0.0, v), jac.diagonal(dim1=1, dim2=2).sum(1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", FAMILIES)
@pytest.mark.parametrize("grad", [False, True])
def test_chunked_and_whole_evaluation_agree(device, grad, monkeypatch):
    edges = kn.topology.random_graph(50, 3000, seed=6)
    piece = kn.Slice(edges, device).double()
    with torch.no_grad():
        piece.params.normal_()
    state = torch.randn(49, 7, dtype=torch.float64)
    whole, whole_div = piece.kernel(torch.float64, state.device).evaluate(
        piece.device_family, piece.params.detach(), state, divergence=True
    )
    monkeypatch.setattr(kcl, "_CHUNK_ELEMENTS", 256 * 7)  # force ~12 chunks of 256 edges
    piece._kernels.clear()
    with torch.set_grad_enabled(grad):
        chunked, chunked_div = piece.field_and_divergence(state.requires_grad_(grad))
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(chunked_div, whole_div, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", FAMILIES)
def test_dense_fused_path_equals_the_gather_path(device):
    edges = kn.topology.fully_connect(5, (3, 2))
    piece = kn.Slice(edges, device).double()
    with torch.no_grad():
        piece.params.normal_()
    state = torch.randn(4, 9, dtype=torch.float64)
    fused = piece.field_and_divergence(state, kernel="affine")
    gathered = piece.field_and_divergence(state, kernel="gather")
    for a, b in zip(fused, gathered, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_ground_is_never_part_of_the_state():
    circuit = small_circuit(num_nodes=5)
    assert circuit.slice(0).num_state == 4
    v, _ = kn.simulate(circuit, torch.randn(3, 4))
    assert v.shape == (3, 4)


def test_capacitance_is_validated():
    edges = kn.topology.fully_connect(3)
    with pytest.raises(kn.errors.ConfigError, match="capacitance must be finite and positive"):
        kn.Slice(edges, capacitance=0.0)
    with pytest.raises(kn.errors.ConfigError, match=r"one value per state node \(2\)"):
        kn.Slice(edges, capacitance=torch.ones(3))


def test_changing_the_capacitance_rebuilds_the_kernel():
    piece = kn.Slice(kn.topology.fully_connect(3), "Conductance", init="ones").double()
    v = torch.randn(2, 2, dtype=torch.float64)
    before = piece(0.0, v)
    with torch.no_grad():
        piece.capacitance.mul_(2.0)
    torch.testing.assert_close(piece(0.0, v), before / 2.0)


def test_parameter_shape_mismatch_is_reported():
    with pytest.raises(
        kn.errors.DeviceError, match=r"ShiftTanh2 on 12 edges needs parameters of shape \(3, 12\), got \(2, 6\)"
    ):
        kn.Slice(kn.topology.fully_connect(3), "ShiftTanh2", params=torch.zeros(2, 6))


def test_unknown_initialiser_lists_choices():
    with pytest.raises(kn.errors.ConfigError, match="unknown initialiser 'he'; choose one of"):
        kn.Slice(kn.topology.fully_connect(3), init="he")


@pytest.mark.parametrize("device", FAMILIES)
@pytest.mark.parametrize("divergence", [False, True])
@pytest.mark.parametrize("nodes", [4, 40])  # dense and CSR operators
def test_analytic_backward_of_the_fused_path_matches_autograd(device, divergence, nodes):
    # The fused path differentiates by hand (AffineField); the gather path by autograd.
    edges = kn.topology.fully_connect(4, (2, 3)) if nodes == 4 else kn.topology.random_graph(nodes, 500, seed=3)
    capacitance = torch.linspace(0.5, 2.0, nodes - 1)
    piece = kn.Slice(edges, device, capacitance=capacitance).double()
    assert piece.kernel(torch.float64, torch.device("cpu")).dense == (nodes == 4)
    with torch.no_grad():
        piece.params.normal_()
    state = torch.randn(nodes - 1, 6, dtype=torch.float64)
    cot_v, cot_t = torch.randn(nodes - 1, 6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)

    def grads(kernel):
        piece.zero_grad()
        x = state.clone().requires_grad_(True)
        if divergence:
            dv, tr = piece.field_and_divergence(x, kernel)
            ((dv * cot_v).sum() + (tr * cot_t).sum()).backward()
        else:
            (piece.field(x, kernel) * cot_v).sum().backward()
        return x.grad, piece.params.grad.clone()

    fused = grads("affine")
    reference = grads("gather")
    for a, b in zip(fused, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_fused_backward_passes_gradcheck():
    piece = kn.Slice(kn.topology.fully_connect(3, (2, 2)), "ShiftTanh2").double()
    state = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)

    def outputs(x, p):
        with torch.no_grad():
            piece.params.copy_(p)
        piece.params.requires_grad_(True)
        return piece.field_and_divergence(x)

    def through_params(x, p):
        kernel = piece.kernel(x.dtype, x.device)
        return kernel.evaluate(piece.device_family, p, x, True)

    params = piece.params.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(through_params, (state, params))


def test_sparse_operators_follow_in_place_parameter_updates():
    # Large circuits cache their CSR operators while the parameters keep their values; an
    # optimiser's in-place update must be seen by the next evaluation.
    piece = kn.Slice(kn.topology.random_graph(30, 200, seed=7), "ShiftRelu1").double()
    state = torch.randn(29, 4, dtype=torch.float64)
    for _ in range(2):
        with torch.no_grad():
            cached = piece.field(state)
            piece.params.mul_(1.5)
        tracked = piece.field(state.clone().requires_grad_())  # the autograd gather path builds no cache
        torch.testing.assert_close(piece.field(state), tracked.detach(), rtol=1e-12, atol=1e-12)
        assert not torch.allclose(cached, tracked)


class _OhmicNotAffine(kn.devices.Device):
    """A user family that is not an affine activation: only the gather path evaluates it."""

    def current(self, v_src, v_dst, p, scratch=False):
        return v_src - v_dst


def _piece(nodes, family):
    edges = kn.topology.fully_connect(nodes)
    return kn.Slice(edges, family, params=None if isinstance(family, str) else torch.empty(0, edges.shape[1]))


@pytest.mark.parametrize(
    ("nodes", "family", "kernel", "track", "path"),
    [
        (5, "ShiftTanh2", "auto", False, "affine"),
        (5, "ShiftTanh2", "auto", True, "affine-vjp"),
        (40, "ShiftTanh2", "auto", False, "affine"),
        (40, "ShiftTanh2", "auto", True, "affine-vjp"),  # the closed-form backward on CSR operators
        (5, "ShiftTanh2", "gather", True, "gather"),
        (5, "ShiftTanh2", "affine", True, "affine-vjp"),
        (40, "ShiftRelu1", "affine", False, "affine"),
        (5, _OhmicNotAffine(), "auto", False, "gather"),
    ],
)
def test_the_kernel_path_follows_the_request_the_family_the_size_and_autograd(nodes, family, kernel, track, path):
    piece = _piece(nodes, family)
    assert piece.kernel(torch.float32, torch.device("cpu")).path(piece.device_family, kernel, track) == path


@pytest.mark.parametrize(
    ("nodes", "family", "track", "message"),
    [
        (5, _OhmicNotAffine(), False, "needs an affine-activation device family; _OhmicNotAffine is not one"),
    ],
)
def test_asking_for_the_affine_path_where_it_does_not_apply_is_a_config_error(nodes, family, track, message):
    piece = _piece(nodes, family)
    with pytest.raises(kn.errors.ConfigError, match=rf"^kernel 'affine' {message}"):
        piece.kernel(torch.float32, torch.device("cpu")).path(piece.device_family, "affine", track)


def test_the_affine_path_has_no_backward_inside_torch_func():
    piece = _piece(5, "ShiftTanh2")
    state = torch.randn(4, 2)
    with pytest.raises(kn.errors.ConfigError, match=r"^kernel 'affine' has no backward pass inside torch.func"):
        torch.func.jacrev(lambda v: piece.field(v, "affine"))(state)
    jacobian = torch.func.jacrev(lambda v: piece.field(v))(state)  # auto falls back to the gather path
    torch.testing.assert_close(jacobian, torch.func.jacrev(lambda v: piece.field(v, "gather"))(state))


def test_an_unknown_kernel_is_a_config_error():
    with pytest.raises(
        kn.errors.ConfigError, match=r"unknown kernel .fast.; choose one of: affine, auto, fused, gather"
    ):
        kn.Solver(kernel="fast")


@pytest.mark.parametrize("kernel", ["gather", "affine"])
def test_every_kernel_path_gives_the_same_large_circuit_field_as_auto(kernel):
    piece = kn.Slice(kn.topology.random_graph(40, 600, seed=2), "ShiftRelu2").double()
    with torch.no_grad():
        piece.params.normal_()
        state = torch.randn(39, 5, dtype=torch.float64)
        auto = piece.field_and_divergence(state)
        chosen = piece.field_and_divergence(state, kernel)
    for a, b in zip(auto, chosen, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nodes", [5, 40])  # dense and CSR incidence
def test_the_kernels_incidence_and_edge_currents_rebuild_its_field(nodes):
    """What the noise SDE and energy accounts use: M·i(V) is the field, edge by edge as KCL writes it."""
    piece = kn.Slice(kn.topology.random_graph(nodes, 6 * nodes, seed=4), "ShiftTanh2").double()
    state = torch.randn(nodes - 1, 3, dtype=torch.float64)
    kernel = piece.kernel(torch.float64, state.device)
    with torch.no_grad():
        current, d_src, d_dst = kernel.edge_currents(piece.device_family, piece.params, state)
        torch.testing.assert_close(kernel.incidence @ current, piece.field(state), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(current.T, _manual_edge_currents(piece, state.T), rtol=1e-12, atol=1e-12)
    assert d_src.shape == d_dst.shape == current.shape == (piece.num_edges, 3)


def _manual_edge_currents(piece: kn.Slice, v: torch.Tensor) -> torch.Tensor:
    full = torch.cat([torch.zeros(v.shape[0], 1, dtype=v.dtype), v], dim=1)
    p = piece.params.to(v.dtype)
    return torch.stack(
        [
            piece.device_family.current(full[:, s], full[:, d], p[:, e])
            for e, (s, d) in enumerate(piece.edge_index.T.tolist())
        ],
        dim=1,
    )

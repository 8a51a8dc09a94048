"""The small-circuit numba kernel (`kirchhoffnet.circuit._small`) against the torch path of `WholeAffine`, against
finite differences, and where it does not run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.circuit._affine import WholeAffine
from kirchhoffnet.circuit._small import refusal, small_kernel
from kirchhoffnet.data import sample_toy

from ..conftest import small_circuit

CPU = torch.device("cpu")


def _systems(nodes: int = 5, with_post: bool = True) -> tuple[WholeAffine, WholeAffine]:
    """The same slice on the small kernel and on the torch path, with random output scales ``post``."""
    piece = small_circuit("ShiftTanh2", num_nodes=nodes, repeat=(3, 2)).slice(0)
    with torch.no_grad():
        piece.capacitance.uniform_(0.5, 2.0)
    kernel = piece.kernel(torch.float32, CPU)
    coeffs, _ = kernel.affine_coefficients(piece.device_family, piece.params.detach())
    post = torch.rand(piece.num_edges) + 0.5 if with_post else None
    small = WholeAffine(kernel, piece.device_family, coeffs, post, None)
    reference = WholeAffine(kernel, piece.device_family, coeffs, post, None)
    reference.small = None
    assert small.small is not None
    return small, reference


def test_tanh_matches_torch_to_float32_rounding():
    x = torch.cat([torch.linspace(-12, 12, 200_001), torch.tensor([0.0, -0.0, 1e-30, 5e-4, -5e-4])])
    kernel = small_kernel()
    assert kernel is not None
    out = np.empty(len(x), np.float32)
    kernel.tanh_array(x.numpy(), out)
    error = (torch.from_numpy(out) - torch.tanh(x)).abs()
    # A few float32 ulps of 1 (XLA's approximation), also where it is clamped (|x| > 7.9).
    assert float(error.max()) < 5e-7


@pytest.mark.parametrize("with_post", [False, True])
@pytest.mark.parametrize("batch", [1, 13, 512])
def test_field_divergence_and_vjp_equal_the_torch_path(with_post, batch):
    small, reference = _systems(with_post=with_post)
    state = torch.randn(small.kernel.num_state, batch) * 2
    grad_out, grad_trace = torch.randn_like(state), torch.randn(batch)
    out, trace, _, _ = small.field(state, True)
    ref_out, ref_trace, current, slope = reference.field(state, True)
    # float32 sums of 40 edge currents of order 1 (the reference's order of summation differs)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=2e-5)
    torch.testing.assert_close(trace, ref_trace, rtol=1e-5, atol=2e-5)
    for cotangent in (grad_trace, None):  # with and without the divergence
        ours = small.field_and_vjp(state, grad_out, cotangent, need_post=True)
        theirs = reference.vjp(state, current, slope, grad_out, cotangent, need_post=True)
        for a, b in zip(ours[2:], theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))  # sums over the batch
        torch.testing.assert_close(ours[0], ref_out, rtol=1e-5, atol=2e-5)  # the field of the same pass
        assert small.vjp(state, None, None, grad_out, cotangent, need_post=False)[2] is None


def test_vjp_matches_finite_differences():
    # L = <gV, f(v)> + <gT, tr(v)>: its derivative along a direction, by central differences in float64 arithmetic
    # of the float32 kernel, against the kernel's own vector-Jacobian product. Steps of 1e-2 leave a truncation
    # error of ~1e-4 relative and a rounding error of ~1e-5.
    small, _ = _systems()
    generator = torch.Generator().manual_seed(5)
    state = torch.randn(small.kernel.num_state, 64, generator=generator)
    grad_out, grad_trace = torch.randn_like(state), torch.randn(64, generator=generator)

    def loss(v: torch.Tensor, system: WholeAffine) -> float:
        out, trace, _, _ = system.field(v, True)
        return float((out.double() * grad_out).sum() + (trace.double() * grad_trace).sum())

    _, _, grad_state, grad_coeffs, grad_post = small.field_and_vjp(state, grad_out, grad_trace, need_post=True)
    direction = torch.randn(state.shape, generator=generator)
    eps = 1e-2
    numeric = (loss(state + eps * direction, small) - loss(state - eps * direction, small)) / (2 * eps)
    assert numeric == pytest.approx(float((grad_state * direction).sum()), rel=2e-3)
    coeff_dir, post_dir = torch.randn(small.coeffs.shape, generator=generator), torch.randn(small.coeffs.shape[0])
    assert small.post is not None

    def moved(sign: float) -> WholeAffine:
        coeffs, post = small.coeffs + sign * eps * coeff_dir, small.post + sign * eps * post_dir
        return WholeAffine(small.kernel, small.device, coeffs, post, None)

    numeric = (loss(state, moved(1.0)) - loss(state, moved(-1.0))) / (2 * eps)
    analytic = float((grad_coeffs * coeff_dir).sum() + (grad_post * post_dir).sum())
    assert numeric == pytest.approx(analytic, rel=2e-3)


@pytest.mark.parametrize(
    ("family", "nodes", "dtype", "why"),
    [
        ("ShiftTanh2", 5, torch.float64, "runs float32 on CPU only"),
        ("ShiftTanh2", 18, torch.float32, "at most 16 state nodes, not 17"),
        ("ShiftRelu1", 5, torch.float32, "tanh families only, not ShiftRelu1"),
    ],
)
def test_other_circuits_stay_on_the_torch_path(family, nodes, dtype, why):
    piece = small_circuit(family, num_nodes=nodes, repeat=(1, 1)).slice(0).to(dtype)
    kernel = piece.kernel(dtype, CPU)
    assert why in str(refusal(piece.device_family, kernel.num_state, CPU, dtype))
    assert "on cuda" in str(refusal(piece.device_family, 2, torch.device("cuda"), torch.float32))
    coeffs, post = kernel.affine_coefficients(piece.device_family, piece.params.detach())
    assert WholeAffine(kernel, piece.device_family, coeffs, post, None).small is None
    state = torch.randn(kernel.num_state, 4, dtype=dtype)
    with torch.no_grad():  # the torch path still evaluates it
        field, _ = piece.field_and_divergence(state, "affine")
        torch.testing.assert_close(field, piece.field_and_divergence(state, "gather")[0])


def test_a_training_step_on_the_kernel_matches_float64(original_dir):
    # The twomoon checkpoint: the fused integrator on the small kernel (float32) against torchdiffeq on the
    # reference gather path in float64, backprop and adjoint; the same steps, the loss within the solver tolerance.
    flow = kn.compat.load_original(original_dir("twomoon"))
    x = torch.from_numpy(sample_toy("twomoon", 256, seed=0))
    results = {}
    for name, gradient, integrator, kernel, dtype in (
        ("backprop", kn.Backprop(), "torchdiffeq", "gather", torch.float64),
        ("adjoint", kn.Adjoint(), "torchdiffeq", "gather", torch.float64),
        ("fused backprop", kn.Backprop(), "fused", "auto", torch.float32),
        ("fused adjoint", kn.Adjoint(), "fused", "auto", torch.float32),
    ):
        flow.to(dtype).gradient = gradient
        flow.solver = kn.Solver(**{**flow.solver.to_dict(), "integrator": integrator, "kernel": kernel})
        flow.zero_grad()
        loss = -flow.log_prob(x.to(dtype)).mean()
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in flow.parameters()]).double()
        assert flow.stats is not None
        results[name] = (float(loss.detach()), grads, flow.stats.nfe, flow.stats.nfe_backward, flow.stats.kernels[0])
    for name in ("backprop", "adjoint"):
        loss, grads, nfe, nfe_backward, _ = results[name]
        ours, ours_grads, ours_nfe, ours_backward, kernels = results[f"fused {name}"]
        assert "fused-rk" in kernels
        assert (ours_nfe, ours_backward) == (nfe, nfe_backward), name
        assert ours == pytest.approx(loss, abs=1e-4), name  # the solver tolerance (float32 rounding: 4e-5)
        # Every float32 path (torch's gather and affine, this kernel) lands 2e-3 to 5e-3 from the float64 gradient.
        assert float((ours_grads - grads).norm() / grads.norm()) < 1e-2, name

"""The fused affine-activation field over a slice's whole edge set, and its closed-form backward pass.

For a family ``i = post · σ(a·v_src + b·v_dst + c)`` on a small (dense) circuit, the KCL field is
two dense products around an elementwise σ, and its vector-Jacobian product has a closed form that
needs no autograd graph (:meth:`WholeAffine.vjp`). Two callers share it: the ``affine-vjp`` kernel
path wraps it in one autograd node (:class:`DenseAffineField`), and the analytic adjoint
(:mod:`kirchhoffnet.solve._adjoint`) evaluates it directly at every step of its backward solve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from kirchhoffnet.devices import AffineActivation

if TYPE_CHECKING:
    from kirchhoffnet.circuit._kcl import KclKernel, _Chunk


def affine_rows(a: Tensor | None, b: Tensor | None, c: Tensor | None, ones: Tensor) -> Tensor:
    """``(a, b, c)`` stacked into (E, 3) rows; an absent ``a`` is 1 (``ones``: (E,) of them), ``c`` 0, and
    ``b = None`` means ``b = −a`` (the difference form), through which autograd carries the gradient."""
    if a is None:
        a = ones
    return torch.stack([a, -a if b is None else b, torch.zeros_like(a) if c is None else c], dim=1)


def trace_weights(chunk: _Chunk, coeffs: Tensor, post: Tensor | None) -> Tensor:
    """``q_e = post_e (w_dst,e b_e − w_src,e a_e)``: tr(∂f/∂v) = q · σ'(U); ``post=None`` omits it."""
    q = chunk.weight_dst * coeffs[:, 1] - chunk.weight_src * coeffs[:, 0]
    return q if post is None else q * post


class WholeAffine:
    """One slice's fused field with fixed coefficients, its operators built once, without autograd.

    Args:
        kernel: the slice's kernel (its whole-edge chunk and scratch buffers).
        device: the affine-activation family.
        coeffs: (E, 3) rows ``(a, b, c)``; ``post``: (E,) output scales or ``None`` (unit). Both are
            used as values: a gradient with respect to them comes from :meth:`vjp`.
    """

    def __init__(self, kernel: KclKernel, device: AffineActivation, coeffs: Tensor, post: Tensor | None) -> None:
        self.kernel, self.device = kernel, device
        self.coeffs = coeffs.detach()
        self.post = None if post is None else post.detach()
        with torch.no_grad():
            self.gather, self.scatter = kernel.operators(kernel.whole, self.coeffs, self.post)

    def field(
        self, state: Tensor, divergence: bool, reuse: bool = False
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """``(dV/dt, divergence, σ(U), σ'(U))`` (see :meth:`KclKernel.affine_field`); ``reuse`` writes U
        into the kernel's scratch buffer, for callers that do not keep σ(U) past the next evaluation."""
        kernel = self.kernel
        buffer = kernel.scratch(kernel.num_edges, state.shape[1], state)[0] if reuse else None
        operators = [(self.gather, self.scatter)]
        return kernel.affine_field(
            self.device, self.coeffs, self.post, state, divergence, [kernel.whole], buffer, operators
        )

    def vjp(
        self,
        state: Tensor,
        current: Tensor,
        slope: Tensor | None,
        grad_out: Tensor,
        grad_trace: Tensor | None,
        need_state: bool = True,
        need_post: bool = False,
    ) -> tuple[Tensor | None, Tensor, Tensor | None]:
        """Vector-Jacobian product of :meth:`field`, in closed form.

        With ``U = G·[0; V; 1]``, ``S = σ(U)``, ``dV = (M ∘ post)·S`` and ``tr = q·σ'(U)``, the
        cotangents (gV, gT) pull back as

            gU    = post ∘ (Mᵀ gV) ∘ σ'(U) + σ''(U) ∘ (q ⊗ gT)
            gV_in = Gᵀ gU (state rows),   g(a, b, c) = rows of gU·[0; V; 1]ᵀ at (src, dst, bias)
            gpost = Σ_B (Mᵀ gV) ∘ S + (σ'(U)·gT) ∘ (w_dst b − w_src a)
            g(a, b) += (σ'(U)·gT) ∘ post ∘ (−w_src, w_dst)

        ``current`` and ``slope`` are σ(U) and σ'(U) from the forward evaluation (``slope=None``
        recomputes it).

        Returns:
            ``(g_state or None, g_coeffs (E, 3), g_post or None)``.
        """
        kernel, device, coeffs, post = self.kernel, self.device, self.coeffs, self.post
        chunk = kernel.whole
        if slope is None:
            slope = device.slope(current)
        # Mᵀ gV (E, B) goes to a scratch buffer: it dies with this call, and a fresh (E, B) block
        # per evaluation costs more than the product itself. Every pass below is in place.
        back = torch.mm(chunk.scatter.T, grad_out, out=kernel.scratch(chunk.stop, grad_out.shape[1], state)[1])
        grad_post = (back * current).sum(1) if need_post else None
        grad_u = back if post is None else back.mul_(post[:, None])
        grad_u.mul_(slope)
        grad_ab = None
        if grad_trace is not None:
            reach = slope @ grad_trace  # (E,): Σ_B σ'(U) gT
            q = trace_weights(chunk, coeffs, None)
            qp = q if post is None else q * post
            grad_u.add_(device.curvature(current, slope).mul_(grad_trace).mul_(qp[:, None]))  # σ'' ∘ (q ⊗ gT)
            if grad_post is not None:
                grad_post += reach * q
            reach_p = reach if post is None else reach * post
            grad_ab = torch.stack([-reach_p * chunk.weight_src, reach_p * chunk.weight_dst], dim=1)
        batch = state.shape[1]
        grad_state = (self.gather.T @ grad_u)[1 : kernel.num_state + 1] if need_state else None
        augmented = torch.cat([state.new_zeros(1, batch), state, state.new_ones(1, batch)])
        grad_coeffs = (grad_u @ augmented.T).gather(1, chunk.gather_cols.view(-1, 3))
        if grad_ab is not None:
            grad_coeffs[:, :2] += grad_ab
        return grad_state, grad_coeffs, grad_post


class DenseAffineField(torch.autograd.Function):
    """dV/dt and the divergence of a dense affine-activation slice, with the analytic backward pass
    of :meth:`WholeAffine.vjp`: one autograd node replaces about thirty, which is what makes a CNF
    training step on the 2-D flows several times faster. First-order only (the adjoint and backprop
    need no more). ``coeffs`` and ``post`` are the inputs gradients flow to; ``system`` holds their values."""

    @staticmethod
    def forward(
        ctx: Any, state: Tensor, coeffs: Tensor, post: Tensor | None, system: WholeAffine, divergence: bool
    ) -> tuple[Tensor, Tensor | None]:
        out, trace, current, _ = system.field(state, divergence)
        # σ'(U) is recomputed from σ(U) in the backward pass rather than kept: a solve keeps every
        # evaluation's saved blocks alive, and reading one more cold (E, B) block back costs more
        # than recomputing it from the one that is read anyway.
        ctx.save_for_backward(state, current)
        ctx.system, ctx.divergence = system, divergence
        return out, trace if divergence else None

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: Tensor, grad_trace: Tensor | None) -> tuple[Tensor | None, ...]:
        state, current = ctx.saved_tensors
        grad_state, grad_coeffs, grad_post = ctx.system.vjp(
            state,
            current,
            None,
            grad_out,
            grad_trace if ctx.divergence else None,
            need_state=ctx.needs_input_grad[0],
            need_post=ctx.needs_input_grad[2],
        )
        return grad_state, grad_coeffs, grad_post, None, None

"""The fused affine-activation field over a slice's whole edge set, and its closed-form backward pass.

For a family ``i = post · σ(a·v_src + b·v_dst + c)`` the KCL field is two products around an
elementwise σ (dense matrices on small circuits, CSR on large ones), and its vector-Jacobian product
has a closed form that needs no autograd graph (`WholeAffine.vjp`). Two callers share it: the
``affine-vjp`` kernel path wraps it in one autograd node (`AffineField`), and the analytic adjoint
(`kirchhoffnet.solve._adjoint`) evaluates it directly at every step of its backward solve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from kirchhoffnet.circuit._small import SmallKcl, refusal
from kirchhoffnet.devices import AffineActivation

if TYPE_CHECKING:
    from kirchhoffnet.circuit._chunk import Chunk
    from kirchhoffnet.circuit._fused import FusedKcl
    from kirchhoffnet.circuit._kcl import KclKernel


def affine_rows(a: Tensor | None, b: Tensor | None, c: Tensor | None, ones: Tensor) -> Tensor:
    """``(a, b, c)`` stacked into (E, 3) rows; an absent ``a`` is 1 (``ones``: (E,) of them), ``c`` 0, and
    ``b = None`` means ``b = −a`` (the difference form), through which autograd carries the gradient."""
    if a is None:
        a = ones
    return torch.stack([a, -a if b is None else b, torch.zeros_like(a) if c is None else c], dim=1)


def trace_weights(chunk: Chunk, coeffs: Tensor, post: Tensor | None) -> Tensor:
    """``q_e = post_e (w_dst,e b_e − w_src,e a_e)``: tr(∂f/∂v) = q · σ'(U); ``post=None`` omits it."""
    q = chunk.weight_dst * coeffs[:, 1] - chunk.weight_src * coeffs[:, 0]
    return q if post is None else q * post


class SparseTransposes:
    """Mᵀ and the pattern of Gᵀ over a sparse kernel's whole edge set, built once per kernel: the
    closed-form backward pass multiplies by both, and torch multiplies by a transposed CSR matrix
    several times slower than by its own CSR (Gᵀ·gU, 230k edges, batch 64: 65 ms against 10 ms)."""

    def __init__(self, kernel: KclKernel) -> None:
        chunk = kernel.whole
        edges = chunk.stop - chunk.start
        owner = torch.arange(edges, device=chunk.src.device).repeat_interleave(3)  # edge of each entry of G
        self.order = torch.argsort(chunk.gather_cols * edges + owner)  # G's entries in Gᵀ's row order
        counts = torch.bincount(chunk.gather_cols, minlength=kernel.num_state + 2)
        self.crow = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        self.col = owner[self.order]
        self.shape = (kernel.num_state + 2, edges)
        self.scatter_t = chunk.scatter.t().to_sparse_csr()

    def gather_t(self, coeffs: Tensor) -> Tensor:
        """Gᵀ (N + 2, E) for coefficient rows ``(a, b, c)`` (E, 3)."""
        values = coeffs.reshape(-1)[self.order]
        return torch.sparse_csr_tensor(self.crow, self.col, values, self.shape, check_invariants=False)


class WholeAffine:
    """One slice's fused field with fixed coefficients, its operators built once, without autograd.

    Without the divergence, a large circuit on CPU evaluates both on the numba kernel (``fused``), which
    recomputes σ(U) from the voltages instead of keeping an (edges × batch) block between the two; a small one
    (tanh, float32, CPU) evaluates both, with or without the divergence, on the small-circuit kernel (`SmallKcl`).

    Args:
        kernel: the slice's kernel (its whole-edge chunk and scratch buffers).
        device: the affine-activation family.
        coeffs: (E, 3) rows ``(a, b, c)``; ``post``: (E,) output scales or ``None`` (unit). Both are
            used as values: a gradient with respect to them comes from `vjp`.
        fused: the numba kernel, or ``None`` for the torch products only.
    """

    def __init__(
        self, kernel: KclKernel, device: AffineActivation, coeffs: Tensor, post: Tensor | None, fused: FusedKcl | None
    ) -> None:
        self.kernel, self.device = kernel, device
        self.coeffs = coeffs.detach()
        self.post = None if post is None else post.detach()
        self.numba = None if fused is None else (fused, fused.rows(self.coeffs, self.post))
        small = refusal(device, kernel.num_state, kernel.device, kernel.dtype) is None
        self.small = SmallKcl(kernel.whole, kernel.num_state, self.coeffs, self.post) if small else None
        self._operators: tuple[Tensor, Tensor] | None = None
        self._gather_t: Tensor | None = None  # sparse kernels: Gᵀ, built on the first vjp

    def _built(self) -> tuple[Tensor, Tensor]:
        """G and the incidence scaled by ``post``, built on first use (the numba kernel needs neither)."""
        if self._operators is None:
            with torch.no_grad():
                self._operators = self.kernel.operators(self.kernel.whole, self.coeffs, self.post)
        return self._operators

    def field(
        self, state: Tensor, divergence: bool, reuse: bool = False
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """``(dV/dt, divergence, σ(U), σ'(U))`` (see
        [`KclKernel.affine_field`][kirchhoffnet.circuit.KclKernel.affine_field]; the numba kernel keeps neither σ(U) nor
        σ'(U): ``None``); ``reuse`` writes U into the kernel's scratch buffer, for callers that do not keep σ(U) past
        the next evaluation."""
        if self.small is not None:
            out, trace = self.small.field(state, divergence)
            return out, trace, None, None
        if self.numba is not None and not divergence:
            fused, rows = self.numba
            out, _ = fused.field(self.device, rows, state, False)
            return out, state.new_zeros(0), None, None
        kernel = self.kernel
        buffer = kernel.scratch(kernel.num_edges, state.shape[1], state)[0] if reuse else None
        operators = [self._built()]
        return kernel.affine_field(
            self.device, self.coeffs, self.post, state, divergence, [kernel.whole], buffer, operators
        )

    def vjp(
        self,
        state: Tensor,
        current: Tensor | None,
        slope: Tensor | None,
        grad_out: Tensor,
        grad_trace: Tensor | None,
        need_state: bool = True,
        need_post: bool = False,
    ) -> tuple[Tensor | None, Tensor, Tensor | None]:
        """Vector-Jacobian product of `field`, in closed form.

        With ``U = G·[0; V; 1]``, ``S = σ(U)``, ``dV = (M ∘ post)·S`` and ``tr = q·σ'(U)``, the
        cotangents (gV, gT) pull back as

            gU    = post ∘ (Mᵀ gV) ∘ σ'(U) + σ''(U) ∘ (q ⊗ gT)
            gV_in = Gᵀ gU (state rows),   g(a, b, c) = rows of gU·[0; V; 1]ᵀ at (src, dst, bias)
            gpost = Σ_B (Mᵀ gV) ∘ S + (σ'(U)·gT) ∘ (w_dst b − w_src a)
            g(a, b) += (σ'(U)·gT) ∘ post ∘ (−w_src, w_dst)

        ``current`` and ``slope`` are σ(U) and σ'(U) from the forward evaluation (``slope=None``
        recomputes it); the numba kernels, where they run (the large one without ``grad_trace``), recompute both.

        Returns:
            ``(g_state or None, g_coeffs (E, 3), g_post or None)``.
        """
        if self.small is not None:
            small_grads = self.small.vjp(state, grad_out, grad_trace)
            return small_grads[0], small_grads[1], small_grads[2] if need_post else None
        if self.numba is not None and grad_trace is None:
            fused, rows = self.numba
            numba_grads = fused.vjp(self.device, rows, state, grad_out, need_post)
            return numba_grads[0], numba_grads[1], numba_grads[2] if need_post else None
        assert current is not None  # the torch field keeps σ(U)
        kernel, device, coeffs, post = self.kernel, self.device, self.coeffs, self.post
        chunk = kernel.whole
        if slope is None:
            slope = device.slope(current)
        # Mᵀ gV (E, B) goes to a scratch buffer: it dies with this call, and a fresh (E, B) block
        # per evaluation costs more than the product itself. Every pass below is in place.
        transposes = None if kernel.dense else kernel.transposes
        incidence_t = chunk.scatter.T if transposes is None else transposes.scatter_t
        back = torch.mm(incidence_t, grad_out, out=kernel.scratch(chunk.stop, grad_out.shape[1], state)[1])
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
        augmented = torch.cat([state.new_zeros(1, batch), state, state.new_ones(1, batch)])
        if transposes is None:
            grad_state = (self._built()[0].T @ grad_u)[1 : kernel.num_state + 1] if need_state else None
            grad_coeffs = (grad_u @ augmented.T).gather(1, chunk.gather_cols.view(-1, 3))
        else:
            grad_state = None
            if need_state:
                if self._gather_t is None:
                    self._gather_t = transposes.gather_t(self.coeffs)
                grad_state = (self._gather_t @ grad_u)[1 : kernel.num_state + 1]
            # Only G's 3E entries of gU·[0; V; 1]ᵀ are wanted: the sampled product computes just those
            # (O(E·B)), where the dense product costs O(E·B·N).
            sampled = torch.sparse.sampled_addmm(self._built()[0], grad_u, augmented.T.contiguous(), beta=0.0).values()
            assert chunk.gather_order is not None
            grad_coeffs = torch.empty_like(sampled).index_copy_(0, chunk.gather_order, sampled).view(-1, 3)
        if grad_ab is not None:
            grad_coeffs[:, :2] += grad_ab
        return grad_state, grad_coeffs, grad_post

    def field_and_vjp(
        self, state: Tensor, grad_out: Tensor, grad_trace: Tensor | None, need_post: bool
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """``(dV/dt, divergence, g_state, g_coeffs, g_post)``: `field` (with the divergence when ``grad_trace`` is
        given) and its `vjp` at the same state, what each step of the adjoint solve needs; one pass on the small
        kernel."""
        if self.small is not None:
            g_state, g_coeffs, g_post, rate, divergence = self.small.vjp(state, grad_out, grad_trace)
            return rate, divergence, g_state, g_coeffs, g_post if need_post else None
        out, trace, current, slope = self.field(state, grad_trace is not None, reuse=True)  # U dies here
        grad_state, grad_coeffs, grad_post = self.vjp(state, current, slope, grad_out, grad_trace, need_post=need_post)
        assert grad_state is not None  # need_state defaults to True
        return out, trace, grad_state, grad_coeffs, grad_post


class AffineField(torch.autograd.Function):
    """dV/dt and the divergence of an affine-activation slice, with the analytic backward pass
    of `WholeAffine.vjp`: one autograd node replaces about thirty, which is what makes a CNF
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

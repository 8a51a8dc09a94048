"""The small-circuit numba kernel: a 2-D flow's field, divergence and their vector-Jacobian product per evaluation.

On the 2-D flows (2 state nodes, 300 edges, batches of a few hundred) the torch path of `WholeAffine` spends an
evaluation on a dozen small operations that each write an (edges × batch) block: U, σ(U), σ'(U), the divergence's
product, and in the backward pass Mᵀ gV, gU, σ''. `_numba_small` computes each edge's share in registers with the
node rows in cache, and recomputes σ in the backward pass instead of keeping it. It takes over wherever
`WholeAffine` evaluates (the ``affine-vjp`` node, the closed-form adjoint, the fused integrator) when
`refusal` finds nothing against it; everything else stays on the torch path, which is the reference in the tests.

numba is imported on first use only.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.circuit._numba_load import load_kernels
from kirchhoffnet.devices import Device

if TYPE_CHECKING:
    from kirchhoffnet.circuit._chunk import Chunk

TANH = 3
"""The large kernel's code for tanh (`kirchhoffnet.circuit._fused`), the one σ this kernel implements."""
Rk = tuple[float, float, np.ndarray]
"""A trial step's ``(rtol, atol, groups)``: the error is measured by the largest RMS over the ``groups`` (G, 2),
``[start, stop)`` ranges of the flattened state."""
MAX_NODES = 16
"""State nodes up to which the kernel runs: its sums, (N + 1) × batch, must stay in the first-level cache."""


@functools.cache
def small_kernel() -> ModuleType | None:
    """The compiled-kernel module, or ``None`` when numba cannot be imported."""
    return load_kernels("_numba_small")


def refusal(device: Device, num_state: int, where: torch.device, dtype: torch.dtype) -> str | None:
    """Why the small-circuit kernel does not evaluate ``device`` here, or ``None`` when it does."""
    from kirchhoffnet.circuit._fused import activation_code  # it imports _affine, which imports this module

    if num_state > MAX_NODES:
        return f"runs circuits of at most {MAX_NODES} state nodes, not {num_state}"
    if where.type != "cpu" or dtype != torch.float32:
        return f"runs float32 on CPU only (its tanh is float32-accurate), not {dtype} on {where.type}"
    if activation_code(device) != TANH:
        return f"implements tanh families only, not {device.name}"
    if small_kernel() is None:
        return "needs numba, which cannot be imported (pip install numba)"
    return None


class SmallKcl:
    """One slice's edges and coefficients laid out for the kernel.

    Args:
        whole: the slice's chunk of all edges: terminals and ``[node ≠ 0] / C`` weights.
        num_state: N, the state nodes.
        coeffs: (E, 3) rows ``(a, b, c)``; ``post``: (E,) output scales or ``None`` (unit).
    """

    def __init__(self, whole: Chunk, num_state: int, coeffs: Tensor, post: Tensor | None) -> None:
        kernel = small_kernel()
        assert kernel is not None  # the caller checked refusal()
        self.kernel = kernel
        # Edges grouped by terminal pair (a stable sort keeps each group's order): the kernel sums a group's
        # currents in one row and adds them to its two nodes once.
        pair = whole.src * (num_state + 1) + whole.dst
        order = torch.sort(pair, stable=True).indices
        counts = torch.unique_consecutive(pair[order], return_counts=True)[1]
        self.starts = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).to(torch.int32).numpy()
        self.order = order.to(torch.int32).numpy()
        with torch.no_grad():
            inv_c = whole.weight_src.new_zeros(num_state + 1)
            inv_c[whole.src] = whole.weight_src  # ground's weight is 0 in both
            inv_c[whole.dst] = whole.weight_dst
            scale = torch.ones_like(coeffs[:, 0]) if post is None else post
            rows = torch.cat([coeffs, scale[:, None]], dim=1)
            self.inv_c = inv_c.to(torch.float32).contiguous().numpy()
            self.rows = rows[order].to(torch.float32).contiguous().numpy()
        self.src = whole.src[order].to(torch.int32).numpy()
        self._buffers: dict[tuple[int, int], np.ndarray] = {}
        self.dst = whole.dst[order].to(torch.int32).numpy()

    def _padded(self, values: Tensor, slot: int) -> np.ndarray:
        """``values`` (N, B) below a zero row for ground, in reused buffer ``slot`` (0: voltages, 1: cotangents)."""
        key = (slot, values.shape[1])
        if key not in self._buffers:
            self._buffers[key] = np.zeros((values.shape[0] + 1, values.shape[1]), dtype=np.float32)
        padded = self._buffers[key]
        padded[1:] = values.detach().numpy()
        return padded

    def field(self, state: Tensor, divergence: bool) -> tuple[Tensor, Tensor]:
        """dV/dt (N, B) and the divergence (B,; empty unless asked) at node-major ``state`` (N, B)."""
        out = torch.empty_like(state)
        trace = state.new_empty(state.shape[1] if divergence else 0)
        edges = (self.src, self.dst, self.starts, self.rows, self.inv_c)
        self.kernel.field(self._padded(state, 0), *edges, divergence, out.numpy(), trace.numpy())
        return out, trace

    def vjp(
        self, state: Tensor, grad_out: Tensor, grad_trace: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(g_state (N, B), g_coeffs (E, 3), g_post (E,), dV/dt, divergence)``: the vector-Jacobian product of
        `field` for the cotangents of its outputs, and `field` itself (the divergence empty without ``grad_trace``),
        from one pass."""
        grad_v = self._padded(grad_out, 1)
        grad_v *= self.inv_c[:, None]  # Mᵀ gV per edge is then gV[dst] − gV[src]
        trace = state.new_empty(state.shape[1])
        cotangent = state.new_zeros(state.shape[1]) if grad_trace is None else grad_trace.detach().contiguous()
        grad_state = np.empty_like(grad_v)
        grads, out = torch.empty(len(self.src), 4), torch.empty_like(state)
        edges = (self.src, self.dst, self.starts, self.order, self.rows, self.inv_c)
        self.kernel.vjp(
            self._padded(state, 0),
            grad_v,
            cotangent.numpy(),
            *edges,
            grad_state,
            grads.numpy(),
            out.numpy(),
            trace.numpy(),
        )
        return (
            torch.from_numpy(grad_state[1:]),
            grads[:, :3],
            grads[:, 3],
            out,
            trace[: 0 if grad_trace is None else None],
        )

    def rk_field(
        self, y: Tensor, table: Tensor, rates: Tensor, states: Tensor, divergence: bool, sign: float, tolerances: Rk
    ) -> tuple[float, bool]:
        """One trial step of the explicit Runge–Kutta pair in ``table`` on the signed field (see
        `_numba_small.rk_field`); ``tolerances``: ``(rtol, atol, groups)``. Returns the error ratio and whether the
        solution ``states[-1]`` is finite."""
        edges = (self.src, self.dst, self.starts, self.rows, self.inv_c)
        arrays = (y.numpy(), table.numpy(), rates.numpy(), states.numpy())
        ratio, finite = self.kernel.rk_field(*arrays, *edges, divergence, sign, *tolerances)
        return ratio, finite

    def rk_adjoint(
        self,
        y: Tensor,
        table: Tensor,
        rates: Tensor,
        states: Tensor,
        divergence: bool,
        sign: float,
        mapping: np.ndarray,
        tolerances: Rk,
    ) -> tuple[float, bool]:
        """One trial step of the adjoint solve's augmented state (see `_numba_small.rk_adjoint`)."""
        edges = (self.src, self.dst, self.starts, self.order, self.rows, self.inv_c)
        arrays = (y.numpy(), table.numpy(), rates.numpy(), states.numpy())
        ratio, finite = self.kernel.rk_adjoint(*arrays, *edges, divergence, sign, mapping, *tolerances)
        return ratio, finite

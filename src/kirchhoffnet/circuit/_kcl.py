"""Kirchhoff's current law as gather → device → incidence product, in node-major layout.

The state is node-major, ``V`` of shape (N, B): row n-1 holds node n's voltage for the whole
batch, so an edge's terminal voltages are rows of V, and the KCL sum is a product with the
signed incidence matrix that already folds in the node capacitances,

    M[n-1, e] = ([dst_e = n] − [src_e = n]) / C_n,        dV/dt = M · I.

Ground (node 0) has no row: current into ground leaves the circuit. The exact CNF divergence
needs only the analytic device slopes,

    tr(∂f/∂v) = Σ_e ([dst_e ≠ 0]/C_dst · ∂i_e/∂v_dst − [src_e ≠ 0]/C_src · ∂i_e/∂v_src),

one O(E·B) pass instead of N reverse-mode sweeps.

Four execution paths share this structure; [`KclKernel.path`][kirchhoffnet.circuit.KclKernel.path] picks one from what
the caller asks for (``kernel``: one of `KERNELS`) and what the evaluation needs, and a solve records the
paths it took ([`kernels`][kirchhoffnet.SolveStats.kernels]):

* ``affine`` — for a family ``i = post · σ(a·v_src + b·v_dst + c)`` when no gradient is recorded
  (inference, the adjoint's forward solve): gather and affine map are one matrix product
  ``U = G · [0; V; 1]`` with G holding (a, b, c) in each edge's row, ``post`` folded into the
  incidence, and the divergence ``q · σ'(U)`` with ``q_e = post_e (w_dst,e b_e − w_src,e a_e)``.
  G and the incidence are dense on small circuits (N ≤ 16 state nodes, the 2-D flows) and CSR on
  large ones, where the three passes over the edges (G product, σ in place, incidence product)
  replace seven; the operators are kept while the parameters are unchanged.
* ``affine-vjp`` — the same over the whole edge set while autograd records, as one autograd node whose
  backward is the closed-form, O(E·B) vector-Jacobian product (`WholeAffine`),
  which the analytic adjoint uses directly.
* ``fused`` — large circuits on CPU without autograd: one numba pass over the edges per batch tile,
  with no (edges × batch) intermediate (`kirchhoffnet.circuit._fused`); ``auto`` takes it from
  ``_fused.MIN_EDGES`` edges on, where numba can be imported and the family's σ is cheap there. With
  autograd the ``affine-vjp`` node runs the same kernel and its numba backward pass.
* ``gather`` — everything else: ``index_select`` of the terminal voltages, the family's own
  ``current``, then the (sparse) incidence product; autograd differentiates it (also inside
  torch.func). It is the reference the other paths are tested against.

Without autograd on CPU, edges are processed in chunks that stay in cache, into preallocated scratch buffers
that the device updates in place, and each chunk adds its currents only into the rows it touches;
fresh multi-megabyte tensors per operation cost more than the arithmetic. With autograd the whole
edge set is one chunk so that the graph stays small.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from kirchhoffnet.circuit._affine import AffineField, SparseTransposes, WholeAffine, affine_rows, trace_weights
from kirchhoffnet.circuit._chunk import Chunk, make_chunk
from kirchhoffnet.circuit._fused import MIN_EDGES, FusedKcl, preferred, refusal
from kirchhoffnet.circuit._snapshot import Snapshot
from kirchhoffnet.devices import AffineActivation, Device
from kirchhoffnet.devices.base import Params
from kirchhoffnet.errors import ConfigError, TopologyError, unknown_choice

# CSR matmul is stable for the operations used here: silence its "beta" notice.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

# Edge chunks hold about this many (edge, sample) elements: 4 MiB of float32 per buffer, which
# stays in cache. Measured on the 230k-edge MNIST circuit at batch 250 (2-core EPYC): 1 << 18 took
# 49 ms per RHS with 2 threads, 1 << 20 37 ms; 1 thread 54 → 47 ms; 1 << 22 thrashes (120 ms).
_CHUNK_ELEMENTS = 1 << 20
# Up to this many state nodes the operators are dense: a tiny dense matmul beats sparse kernels.
DENSE_MAX_NODES = 16
KERNELS = ("auto", "gather", "affine", "fused")
"""What a caller may ask for: ``auto`` (the fastest path that applies), ``gather`` (the reference, any
family), ``affine`` (the torch fused paths) or ``fused`` (numba); the last two fail where they don't apply."""


def check_kernel(kernel: str) -> str:
    """``kernel`` if it is one of `KERNELS`, else [`ConfigError`][kirchhoffnet.errors.ConfigError]."""
    if kernel not in KERNELS:
        raise ConfigError(unknown_choice("kernel", kernel, KERNELS))
    return kernel


def functorch_active() -> bool:
    """Inside torch.func transforms (vmap, jacrev) the hand-written backward cannot be used."""
    peek = getattr(getattr(torch._C, "_functorch", None), "peek_interpreter_stack", None)
    return peek is not None and peek() is not None


def records(state: Tensor, params: Tensor) -> bool:
    """Whether autograd records an evaluation of ``state`` with ``params``."""
    return torch.is_grad_enabled() and (state.requires_grad or params.requires_grad)


def _check_bounds(edge_index: Tensor, num_nodes: int) -> None:
    """The sparse operators are built with ``check_invariants=False`` (a per-call cost on every solve), so
    an index outside ``[0, num_nodes)`` would corrupt native memory: whatever put the topology into the
    slice, the kernel refuses it here, once per build."""
    if edge_index.dtype != torch.long or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise TopologyError(
            f"edge_index must be a (2, E) long tensor, got {edge_index.dtype} {tuple(edge_index.shape)}"
        )
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise TopologyError(
            f"edge_index holds node {int(edge_index.min())}..{int(edge_index.max())} but the circuit has nodes "
            f"0..{num_nodes - 1}; it was changed after the circuit was built"
        )


class KclKernel:
    """The KCL right-hand side of one slice, built for one torch device and dtype."""

    def __init__(self, edge_index: Tensor, capacitance: Tensor, dtype: torch.dtype, device: torch.device) -> None:
        self.num_state = capacitance.numel()
        self.num_edges = edge_index.shape[1]
        _check_bounds(edge_index, self.num_state + 1)
        self.dense = self.num_state <= DENSE_MAX_NODES
        self._src, self._dst = edge_index.to(device)
        self.device, self.dtype = device, dtype
        self._fused: FusedKcl | None = None  # sorted on first use
        self._inv_c = torch.cat([capacitance.new_zeros(1), 1.0 / capacitance]).to(device=device, dtype=dtype)
        self.whole = make_chunk(self._src, self._dst, self._inv_c, 0, self.num_edges, False, self.dense)
        self._chunks: dict[int, list[Chunk]] = {}
        self._buffers: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}
        self._sparse_cache: tuple[Any, ...] | None = None

    def operators(self, chunk: Chunk, coeffs: Tensor, post: Tensor | None) -> tuple[Tensor, Tensor]:
        """The chunk's gather ``G`` (n, N + 2) with rows (a, b, c) at columns (src, dst, bias) and its
        incidence scaled by ``post``: dense matrices on small circuits, CSR on large ones."""
        part = slice(chunk.start, chunk.stop)
        n = chunk.stop - chunk.start
        if chunk.gather_order is None:
            gather = coeffs.new_zeros(n, self.num_state + 2)
            gather.scatter_(1, chunk.gather_cols.view(-1, 3), coeffs[part])
            return gather, chunk.scatter if post is None else chunk.scatter * post[part]
        assert chunk.gather_crow is not None and chunk.gather_csr_cols is not None  # sparse chunk
        values = coeffs[part].reshape(-1)[chunk.gather_order]
        gather = torch.sparse_csr_tensor(
            chunk.gather_crow, chunk.gather_csr_cols, values, (n, self.num_state + 2), check_invariants=False
        )
        if post is None:
            return gather, chunk.scatter
        s = chunk.scatter
        scaled = s.values() * post[part][s.col_indices()]
        scatter = torch.sparse_csr_tensor(s.crow_indices(), s.col_indices(), scaled, s.shape, check_invariants=False)
        return gather, scatter

    def _cached_operators(
        self, device: AffineActivation, params: Tensor, chunks: list[Chunk], unchanged: bool = False
    ) -> tuple[Tensor, Tensor | None, list[tuple[Tensor, Tensor]]]:
        """Coefficients and operators of every chunk, kept while the parameters hold the same values.

        Building them costs a few per cent of an evaluation (a third on the tiny 2-D flows), and a
        solve makes a hundred evaluations with the same parameters. The values are compared, not
        the tensor's address and version, which ``p.data`` edits bypass (see `Snapshot`); ``unchanged``
        skips the comparison, a host sync on a GPU, where the caller vouches for the values (see `evaluate`).
        """
        key = (len(chunks), chunks[0].stop)
        cache = self._sparse_cache
        if cache is None or cache[0] != key or not (unchanged or cache[1].matches(params)):
            coeffs, post = self.affine_coefficients(device, params)
            operators = [self.operators(chunk, coeffs, post) for chunk in chunks]
            cache = self._sparse_cache = (key, Snapshot(params), coeffs, post, operators)
        _, _, coeffs, post, operators = cache
        return coeffs, post, operators

    @property
    def incidence(self) -> Tensor:
        """M (N, E) with ``M[n-1, e] = ([dst_e = n] − [src_e = n]) / C_n``, so that dV/dt = M·I: dense on
        small circuits, CSR on large ones. Anything that sums edge quantities into nodes (the noise
        SDE's diffusion, energy accounts) uses this one matrix."""
        return self.whole.scatter

    def edge_currents(self, device: Device, params: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Each edge's current and its slopes ``(i, ∂i/∂v_src, ∂i/∂v_dst)``, each (E, B), at the node-major
        ``state`` (N, B): the gather path's first half, for callers that need the edges themselves."""
        padded = torch.cat([state.new_zeros(1, state.shape[1]), state])
        v_src, v_dst = padded.index_select(0, self._src), padded.index_select(0, self._dst)
        return device.current_and_slopes(v_src, v_dst, params[:, :, None])

    def path(self, device: Device, kernel: str = "auto", track: bool = False) -> str:
        """The path an evaluation of ``device`` takes when the caller asks for ``kernel`` and autograd
        does (``track``) or does not record: ``gather``, ``affine``, ``affine-vjp`` or ``fused`` (see the module).

        Raises:
            ConfigError: ``kernel="affine"`` where no fused path applies (a family that is not an affine
                activation; autograd inside torch.func);
                ``kernel="fused"`` where the numba kernel does not (see `refusal`).
        """
        if check_kernel(kernel) == "gather":
            return "gather"
        if kernel == "fused" or (kernel == "auto" and self.num_edges >= MIN_EDGES and preferred(device)):
            why = refusal(device, self.device, self.dtype, track and functorch_active())
            if why is None:  # with autograd, the closed-form node runs the numba field and backward
                return "affine-vjp" if track else "fused"
            if kernel == "fused":
                raise ConfigError(f"kernel 'fused' {why}")
        if not isinstance(device, AffineActivation):
            if kernel == "affine":
                raise ConfigError(f"kernel 'affine' needs an affine-activation device family; {device.name} is not one")
            return "gather"
        if not track:
            return "affine"
        if not functorch_active():
            return "affine-vjp"
        if kernel == "affine":
            raise ConfigError("kernel 'affine' has no backward pass inside torch.func; use 'auto' or 'gather'")
        return "gather"

    @cached_property
    def transposes(self) -> SparseTransposes:  # built on a sparse kernel's first closed-form backward pass
        return SparseTransposes(self)

    def closed_form_adjoint(self, device: Device, kernel: str = "auto") -> bool:
        """Whether the adjoint of ``device`` on this kernel can use closed-form vector-Jacobian products."""
        return self.path(device, kernel, track=True) == "affine-vjp"

    def chunks(self, batch: int, whole: bool) -> list[Chunk]:
        """The edge partition for a batch size; ``whole`` gives one chunk (for autograd). Off the CPU it is always
        one chunk: the chunk size is a CPU cache's, and a GPU would pay three kernel launches per chunk for it."""
        size = max(256, _CHUNK_ELEMENTS // max(batch, 1))
        if whole or self.device.type != "cpu" or size >= self.num_edges:
            return [self.whole]
        if size not in self._chunks:
            self._chunks[size] = [
                make_chunk(self._src, self._dst, self._inv_c, a, min(a + size, self.num_edges), True, self.dense)
                for a in range(0, self.num_edges, size)
            ]
        return self._chunks[size]

    def scratch(self, rows: int, batch: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """Two reusable (rows, batch) buffers: the gathered terminal voltages, or U and the
        vector-Jacobian product's Mᵀ gV (the closed-form adjoint uses both at once)."""
        key = (rows, batch)
        if key not in self._buffers:  # keep only the latest shape: batches rarely alternate
            self._buffers = {key: (like.new_empty(key), like.new_empty(key))}
        return self._buffers[key]

    def evaluate(
        self,
        device: Device,
        params: Tensor,
        state: Tensor,
        divergence: bool,
        kernel: str = "auto",
        unchanged: bool = False,
        coefficients: tuple[Tensor, Tensor | None] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """dV/dt (N, B) and, if asked, the divergence (B,) for node-major ``state`` (N, B), on the path
        [`path`][kirchhoffnet.circuit.KclKernel.path] picks for ``kernel``. ``unchanged``: ``params`` hold the
        values of this kernel's previous evaluation without autograd (a solve's later evaluations), so its cached
        operators are used without comparing the values. ``coefficients``: `affine_coefficients` of ``params``,
        recorded once for a whole solve (see `kirchhoffnet.devices.base.clamp_inward`)."""
        track = records(state, params)
        path = self.path(device, kernel, track)
        if path == "fused":
            assert isinstance(device, AffineActivation)
            return self.fused().evaluate(device, params, state, divergence, unchanged)
        batch = state.shape[1]
        chunks = self.chunks(batch, whole=track)
        if not track:
            rows = max(c.stop - c.start for c in chunks)
            buf_a, buf_b = self.scratch(rows, batch, state)
        if path == "affine":
            assert isinstance(device, AffineActivation)
            coeffs, post, operators = self._cached_operators(device, params, chunks, unchanged)
            out, trace, _, _ = self.affine_field(device, coeffs, post, state, divergence, chunks, buf_a, operators)
            return out, trace if divergence else None
        if path == "affine-vjp":
            assert isinstance(device, AffineActivation)
            coeffs, post = coefficients or self.affine_coefficients(device, params)
            system = WholeAffine(self, device, coeffs, post, self.fused_for(device, kernel))
            return AffineField.apply(state, coeffs, post, system, divergence)  # one autograd node per evaluation
        out = state.new_zeros(self.num_state, batch)
        trace = state.new_zeros(batch)  # returned only when asked for
        padded = torch.cat([state.new_zeros(1, batch), state])  # row 0 is ground
        for chunk in chunks:
            if track:
                v_src = padded.index_select(0, chunk.src)
                v_dst = padded.index_select(0, chunk.dst)
            else:
                n = chunk.stop - chunk.start
                v_src = torch.index_select(padded, 0, chunk.src, out=buf_a[:n])
                v_dst = torch.index_select(padded, 0, chunk.dst, out=buf_b[:n])
            p = params[:, chunk.start : chunk.stop, None]  # (P, n, 1): one column per edge
            if divergence:
                current, d_src, d_dst = device.current_and_slopes(v_src, v_dst, p, scratch=not track)
                trace = trace + chunk.weight_dst @ d_dst - chunk.weight_src @ d_src
            else:
                current = device.current(v_src, v_dst, p, scratch=not track)
            out = self._accumulate(out, chunk, chunk.scatter, current, track)
        return out, trace if divergence else None

    def affine_coefficients(self, device: AffineActivation, params: Params) -> tuple[Tensor, Tensor | None]:
        """(E, 3) rows ``(a, b, c)`` and ``post`` (E,) or ``None`` (unit) of an affine-activation family."""
        return self.coefficient_matrix(*device.coefficients(params))

    def coefficient_matrix(
        self, a: Tensor | None, b: Tensor | None, c: Tensor | None, post: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """`affine_rows` of ``(a, b, c)``, and ``post``."""
        return affine_rows(a, b, c, self._inv_c.new_ones(self.num_edges)), post

    def affine_field(
        self,
        device: AffineActivation,
        coeffs: Tensor,
        post: Tensor | None,
        state: Tensor,
        divergence: bool,
        chunks: list[Chunk],
        buffer: Tensor | None,
        operators: list[tuple[Tensor, Tensor]] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """The fused evaluation of an affine-activation family, without autograd.

        ``coeffs`` (E, 3) holds (a, b, c) per edge and ``post`` (E,) the output scale (``None``: unit);
        ``buffer`` (rows ≥ chunk size, B) receives U in place, or ``None`` to allocate; ``operators``
        are the chunks' prebuilt ``(G, S)`` (see [`operators`][kirchhoffnet.circuit.KclKernel.operators]).

        Returns:
            ``(dV/dt, divergence, σ(U), σ'(U))`` with the last two of the last chunk (σ' only
            when the divergence is asked for).
        """
        batch = state.shape[1]
        augmented = torch.cat([state.new_zeros(1, batch), state, state.new_ones(1, batch)])
        out = state.new_zeros(self.num_state, batch)
        trace = state.new_zeros(batch)
        current, slope = out, None
        for k, chunk in enumerate(chunks):
            part = slice(chunk.start, chunk.stop)
            gather, scatter = self.operators(chunk, coeffs, post) if operators is None else operators[k]
            if buffer is None:
                u = gather @ augmented
            else:
                u = buffer[: chunk.stop - chunk.start]
                torch.addmm(u, gather, augmented, beta=0, out=u)  # beta = 0: the buffer's old values are ignored
            current = device.activation(u, inplace=True)
            if divergence:
                slope = device.slope(current)
                trace += trace_weights(chunk, coeffs[part], None if post is None else post[part]) @ slope
            rows = out[chunk.lo : chunk.hi]
            torch.addmm(rows, scatter, current, out=rows)
        return out, trace, current, slope

    def whole_affine(
        self, device: AffineActivation, abc: tuple[Tensor | None, ...], post: Tensor | None, kernel: str
    ) -> WholeAffine:
        """The fused evaluation over all edges with coefficients ``abc = (a, b, c)`` (see
        [`coefficient_matrix`][kirchhoffnet.circuit.KclKernel.coefficient_matrix]) and its closed-form vector-Jacobian
        product, on the numba kernel where ``kernel`` lets it run: what the ``affine-vjp`` path and the analytic adjoint
        evaluate."""
        a, b, c = abc
        coeffs, post = self.coefficient_matrix(a, b, c, post)
        return WholeAffine(self, device, coeffs, post, self.fused_for(device, kernel))

    def fused(self) -> FusedKcl:
        """The numba kernel's sorted topology, built on first use."""
        self._fused = self._fused or FusedKcl(self.whole, self._inv_c, self.affine_coefficients)
        return self._fused

    def fused_for(self, device: Device, kernel: str) -> FusedKcl | None:
        """[`fused`][kirchhoffnet.circuit.KclKernel.fused] where an evaluation of ``device`` without autograd would take
        it (see [`path`][kirchhoffnet.circuit.KclKernel.path])."""
        return self.fused() if self.path(device, kernel, track=False) == "fused" else None

    @staticmethod
    def _accumulate(out: Tensor, chunk: Chunk, scatter: Tensor, current: Tensor, track: bool) -> Tensor:
        """``out[lo:hi] += scatter @ current``, in place unless autograd records."""
        if track:  # one whole chunk: lo:hi covers every row
            return out + scatter @ current
        rows = out[chunk.lo : chunk.hi]
        torch.addmm(rows, scatter, current, out=rows)
        return out

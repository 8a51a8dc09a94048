"""A run of a slice's edges with the index structures every KCL path precomputes for it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Chunk:
    """Edges ``start:stop`` with their precomputed index structures."""

    start: int
    stop: int
    src: Tensor  # (n,) long, rows of the ground-padded state
    dst: Tensor
    gather_cols: Tensor  # (3n,) columns [src, dst, bias] of each edge's row of G
    lo: int  # output rows lo:hi are the only ones this chunk's currents reach
    hi: int
    scatter: Tensor  # (hi-lo, n) incidence / C, dense or CSR (whose column = local edge)
    weight_src: Tensor  # (n,) [src ≠ 0] / C_src
    weight_dst: Tensor  # (n,) [dst ≠ 0] / C_dst
    gather_order: Tensor | None  # sparse kernels: CSR value order of the flattened (n, 3) coefficients
    # Sparse kernels: G's CSR structure (row pointers, sorted columns). It depends on the topology only, so
    # an optimiser step, which changes G's values, rebuilds none of it.
    gather_crow: Tensor | None
    gather_csr_cols: Tensor | None


def make_chunk(
    src: Tensor, dst: Tensor, inv_c: Tensor, start: int, stop: int, restrict_rows: bool, dense: bool
) -> Chunk:
    """The chunk of edges ``start:stop`` of ``(src, dst)`` for node weights ``inv_c`` (N + 1,), ground's
    0 first: its incidence dense or CSR, its output rows restricted to those it reaches if asked."""
    num_state = len(inv_c) - 1
    s, d = src[start:stop], dst[start:stop]
    n = stop - start
    local = torch.arange(n, device=s.device)
    rows = torch.cat([d, s])
    keep = rows != 0  # ground has no row
    rows, cols = rows[keep] - 1, torch.cat([local, local])[keep]
    vals = torch.cat([inv_c[d], -inv_c[s]])[keep]
    lo, hi = (int(rows.min()), int(rows.max()) + 1) if restrict_rows and len(rows) else (0, num_state)
    coo = torch.sparse_coo_tensor(torch.stack([rows - lo, cols]), vals, (hi - lo, n), check_invariants=False)
    coo = coo.coalesce()
    scatter = coo.to_dense() if dense else coo.to_sparse_csr()
    bias = torch.full_like(s, num_state + 1)  # the all-ones row of the augmented state
    gather_cols = torch.stack([s, d, bias], dim=1).reshape(-1)
    # CSR wants each row's columns sorted: order the (src, dst, bias) entries of every edge's row.
    row_major = local.repeat_interleave(3) * (num_state + 2) + gather_cols
    gather_order = None if dense else torch.argsort(row_major)
    gather_crow = None if dense else torch.arange(0, 3 * n + 1, 3, device=s.device)
    gather_csr_cols = None if gather_order is None else gather_cols[gather_order]
    return Chunk(
        start=start,
        stop=stop,
        src=s,
        dst=d,
        gather_cols=gather_cols,
        lo=lo,
        hi=hi,
        scatter=scatter,
        weight_src=inv_c[s],
        weight_dst=inv_c[d],
        gather_order=gather_order,
        gather_crow=gather_crow,
        gather_csr_cols=gather_csr_cols,
    )

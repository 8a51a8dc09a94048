"""The numba kernel behind `kirchhoffnet.circuit._fused`; importing this module imports numba.

One pass over the edges per batch tile: each edge's affine argument, activation and its current into
the KCL sums at both terminals are computed in one loop over the tile, so no (edges × batch) block
is ever written. A tile's voltages and sums, (N + 1) × tile each, stay in the core's cache while
every edge is visited; tiles are independent, so they run in parallel without write conflicts.

Two rules keep the inner loops vectorised (measured: breaking either made the MNIST RHS 2–7×
slower): the activation is chosen once per edge, each σ with its own loop over the tile (a branch
inside the loop defeats SIMD), and every constant has the state's dtype (a Python float literal
turns float32 arithmetic into float64).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

IDENTITY, RELU, LEAKY, TANH, MOS = 0, 1, 2, 3, 4
"""Activation codes: σ(u) = u, relu(u), leaky_relu(u, α), tanh(u), MosRelu's rounded ramp."""


_REDUCE = {"reassoc", "nsz"}
"""What lets LLVM vectorise the per-edge sums over a tile: reassociation (the sums' order changes at
rounding level), nothing that touches NaN or infinity."""


def set_threads(requested: int) -> None:
    """Run the tiles on ``requested`` threads, as many as numba has."""
    numba.set_num_threads(max(1, min(requested, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]


@njit(inline="always", cache=True)
def _add_currents(sd, ss, vs, vd, a, b, c, post, act, zero, half, one, alpha):
    """The edge's current i = post · σ(a v_s + b v_d + c) over the tile: sd += i, ss −= i."""
    if act == RELU:
        for j in range(vs.shape[0]):
            i = post * max(a * vs[j] + b * vd[j] + c, zero)
            sd[j] += i
            ss[j] -= i
    elif act == LEAKY:
        for j in range(vs.shape[0]):
            u = a * vs[j] + b * vd[j] + c
            i = post * (u if u > zero else alpha * u)
            sd[j] += i
            ss[j] -= i
    elif act == TANH:
        for j in range(vs.shape[0]):
            i = post * np.tanh(a * vs[j] + b * vd[j] + c)
            sd[j] += i
            ss[j] -= i
    elif act == MOS:
        for j in range(vs.shape[0]):
            u = a * vs[j] + b * vd[j] + c
            r = min(max(u, zero), one)
            i = post * r * (u - half * r)
            sd[j] += i
            ss[j] -= i
    else:
        for j in range(vs.shape[0]):
            i = post * (a * vs[j] + b * vd[j] + c)
            sd[j] += i
            ss[j] -= i


@njit(inline="always", cache=True)
def _add_slope(trace, q, vs, vd, a, b, c, act, zero, one, alpha):
    """trace += q · σ'(a v_s + b v_d + c) over the tile."""
    if act == RELU:
        for j in range(vs.shape[0]):
            trace[j] += q if (a * vs[j] + b * vd[j] + c) > zero else zero
    elif act == LEAKY:
        for j in range(vs.shape[0]):
            trace[j] += q if (a * vs[j] + b * vd[j] + c) > zero else q * alpha
    elif act == TANH:
        for j in range(vs.shape[0]):
            t = np.tanh(a * vs[j] + b * vd[j] + c)
            trace[j] += q * (one - t * t)
    elif act == MOS:
        for j in range(vs.shape[0]):
            trace[j] += q * min(max(a * vs[j] + b * vd[j] + c, zero), one)
    else:
        for j in range(vs.shape[0]):
            trace[j] += q


@njit(inline="always", cache=True)
def _tile_voltages(values, lo, width):
    """Columns ``lo:lo + width`` of node-major ``values`` (N, B) with ground's row of zeros on top."""
    tile = np.zeros((values.shape[0] + 1, width), dtype=values.dtype)
    for n in range(values.shape[0]):
        tile[n + 1, :] = values[n, lo : lo + width]
    return tile


@njit(parallel=True, cache=True)
def kcl_tiles(state, src, dst, coeffs, inv_c, act, constants, tile, divergence, out, trace):
    """``out`` (N, B) ← dV/dt and, with ``divergence``, ``trace`` (B,) ← tr(∂f/∂v) for ``state`` (N, B).

    ``src``, ``dst`` (E,) int32 are the edges sorted by destination, ``coeffs`` (E, 5) their rows
    ``(a, b, c, post, q)`` with ``q = post (w_dst b − w_src a)`` the divergence weight, ``inv_c`` (N,)
    the inverse capacitances, ``constants`` (0, 1/2, 1, α) in the state's dtype. Node 0 (ground)
    reads 0 V and its sum is dropped.
    """
    num_state, batch = state.shape
    num_edges = src.shape[0]
    zero, half, one, alpha = constants[0], constants[1], constants[2], constants[3]
    for t in prange((batch + tile - 1) // tile):
        lo = t * tile
        width = min(tile, batch - lo)
        volts = _tile_voltages(state, lo, width)
        sums = np.zeros((num_state + 1, width), dtype=state.dtype)
        tr = np.zeros(width, dtype=state.dtype)
        for e in range(num_edges):
            s, d = src[e], dst[e]
            a, b, c, post = coeffs[e, 0], coeffs[e, 1], coeffs[e, 2], coeffs[e, 3]
            vs, vd, ss, sd = volts[s], volts[d], sums[s], sums[d]
            _add_currents(sd, ss, vs, vd, a, b, c, post, act, zero, half, one, alpha)
            if divergence:
                _add_slope(tr, coeffs[e, 4], vs, vd, a, b, c, act, zero, one, alpha)
        for n in range(num_state):
            out[n, lo : lo + width] = sums[n + 1] * inv_c[n]
        if divergence:
            trace[lo : lo + width] = tr


@njit(inline="always", cache=True)
def _edge_cotangents(gu, sig, vs, vd, gs, gd, a, b, c, post, act, zero, half, one, alpha, need_post):
    """One edge over the tile, σ recomputed from the voltages: gu ← post · back · σ'(U) and, with
    ``need_post``, sig ← back · σ(U), where back = g_dst − g_src. Loops without reductions, so each
    vectorises; the sums over the tile follow in one loop shared by every family."""
    if act == RELU:
        for j in range(vs.shape[0]):
            gu[j] = post * (gd[j] - gs[j]) if a * vs[j] + b * vd[j] + c > zero else zero
        if need_post:
            for j in range(vs.shape[0]):
                sig[j] = (gd[j] - gs[j]) * max(a * vs[j] + b * vd[j] + c, zero)
    elif act == LEAKY:
        for j in range(vs.shape[0]):
            gu[j] = post * (gd[j] - gs[j]) * (one if a * vs[j] + b * vd[j] + c > zero else alpha)
        if need_post:
            for j in range(vs.shape[0]):
                u = a * vs[j] + b * vd[j] + c
                sig[j] = (gd[j] - gs[j]) * (u if u > zero else alpha * u)
    elif act == TANH:
        for j in range(vs.shape[0]):
            t = np.tanh(a * vs[j] + b * vd[j] + c)
            gu[j] = post * (gd[j] - gs[j]) * (one - t * t)
            sig[j] = (gd[j] - gs[j]) * t
    elif act == MOS:
        for j in range(vs.shape[0]):
            gu[j] = post * (gd[j] - gs[j]) * min(max(a * vs[j] + b * vd[j] + c, zero), one)
        if need_post:
            for j in range(vs.shape[0]):
                u = a * vs[j] + b * vd[j] + c
                r = min(max(u, zero), one)
                sig[j] = (gd[j] - gs[j]) * r * (u - half * r)
    else:
        for j in range(vs.shape[0]):
            gu[j] = post * (gd[j] - gs[j])
        if need_post:
            for j in range(vs.shape[0]):
                sig[j] = (gd[j] - gs[j]) * (a * vs[j] + b * vd[j] + c)


@njit(cache=True, fastmath=_REDUCE)
def _edge_sums(sums, gu, sig, bs, bd, vs, vd, a, b, zero, need_post):
    """The terminals' cotangents gain (a, b) · gU; ``sums`` ← Σ gU·v_src, Σ gU·v_dst, Σ gU, Σ sig over the
    tile. A function of its own: fastmath reaches its loops here (inlined into the parallel kernel,
    the sums stayed scalar and the kernel ran 2–3× slower)."""
    sa, sb, sc, sp = zero, zero, zero, zero
    for j in range(gu.shape[0]):
        bs[j] += a * gu[j]
        bd[j] += b * gu[j]
        sa += gu[j] * vs[j]
        sb += gu[j] * vd[j]
        sc += gu[j]
    if need_post:
        for j in range(sig.shape[0]):
            sp += sig[j]
    sums[0], sums[1], sums[2], sums[3] = sa, sb, sc, sp


@njit(parallel=True, cache=True)
def vjp_tiles(state, grad_out, src, dst, coeffs, inv_c, act, constants, tile, need_post, grad_state, partial):
    """The closed-form vector-Jacobian product of `kcl_tiles`'s field (no divergence): for the
    cotangent ``grad_out`` (N, B), ``grad_state`` (N, B) ← ∂f/∂vᵀ·g and ``partial`` (tiles, E, 4) ← each
    batch tile's sums of the cotangents of ``(a, b, c, post)`` per sorted edge (the caller adds the
    tiles). Tiles own disjoint batch columns, so they write without conflicts; σ and σ' are recomputed
    from the voltages rather than read from an (edges × batch) block.
    """
    num_state, batch = state.shape
    zero, half, one, alpha = constants[0], constants[1], constants[2], constants[3]
    tiles = (batch + tile - 1) // tile
    for t in prange(tiles):
        lo = t * tile
        width = min(tile, batch - lo)
        volts = _tile_voltages(state, lo, width)
        scaled = _tile_voltages(grad_out, lo, width)  # g / C: the incidence folded in
        for n in range(num_state):
            scaled[n + 1, :] *= inv_c[n]
        back = np.zeros((num_state + 1, width), dtype=state.dtype)
        gu = np.zeros(width, dtype=state.dtype)
        sig = np.zeros(width, dtype=state.dtype)
        for e in range(src.shape[0]):
            s, d = src[e], dst[e]
            a, b = coeffs[e, 0], coeffs[e, 1]
            vs, vd, bs, bd = volts[s], volts[d], back[s], back[d]
            _edge_cotangents(
                gu, sig, vs, vd, scaled[s], scaled[d], a, b, coeffs[e, 2], coeffs[e, 3],
                act, zero, half, one, alpha, need_post,
            )  # fmt: skip
            _edge_sums(partial[t, e], gu, sig, bs, bd, vs, vd, a, b, zero, need_post)
        for n in range(num_state):
            grad_state[n, lo : lo + width] = back[n + 1]

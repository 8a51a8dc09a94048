"""The numba kernels behind `kirchhoffnet.circuit._fused`; importing this module imports numba.

One pass over the edges per batch tile, so no (edges × batch) block is ever written: the field visits
the edges two at a time, both edges joining the same pair of nodes, so each pair's voltages are read and
its two sums updated once per two currents; the vector-Jacobian product visits them one at a time. A
tile's voltages and sums, (N + 1) × tile each, stay in the core's cache while every edge is visited. Each
call runs one tile (the field: one range of its edge groups) and releases the GIL: the caller runs the
calls on Python threads, so no OpenMP or TBB pool competes with torch's.

Two rules keep the inner loops vectorised (measured: breaking either made the MNIST RHS 2–7×
slower): no branch on the family inside a loop over the tile (a branch defeats SIMD; the field
inlines a copy of its loop per family, the product has one loop per σ), and every constant has the
state's dtype (a Python float literal turns float32 arithmetic into float64).
"""

from __future__ import annotations

import numpy as np
from numba import njit

IDENTITY, RELU, LEAKY, TANH, MOS = 0, 1, 2, 3, 4
"""Activation codes: σ(u) = u, relu(u), leaky_relu(u, α), tanh(u), MosRelu's rounded ramp."""


_CONTRACT = {"contract"}
"""What lets LLVM fuse a multiply and an add into one FMA (one rounding instead of two)."""

_REDUCE = {"reassoc", "nsz"}
"""What lets LLVM vectorise the per-edge sums over a tile: reassociation (the sums' order changes at
rounding level), nothing that touches NaN or infinity."""


@njit(inline="always", cache=True)
def _sigma(u, act, zero, half, one, alpha):
    """σ(u) of the family ``act``; inlined with ``act`` a constant, so the branches fold away."""
    if act == RELU:
        return max(u, zero)
    if act == LEAKY:
        return u if u > zero else alpha * u
    if act == TANH:
        return np.tanh(u)
    if act == MOS:
        r = min(max(u, zero), one)
        return r * (u - half * r)
    return u


@njit(inline="always", cache=True)
def _slope(u, act, zero, one, alpha):
    """σ'(u) of the family ``act``, inlined like `_sigma`."""
    if act == RELU:
        return one if u > zero else zero
    if act == LEAKY:
        return one if u > zero else alpha
    if act == TANH:
        t = np.tanh(u)
        return one - t * t
    if act == MOS:
        return min(max(u, zero), one)
    return one


@njit(inline="always", cache=True)
def _tile_voltages(values, lo, width):
    """Columns ``lo:lo + width`` of node-major ``values`` (N, B) with ground's row of zeros on top."""
    tile = np.zeros((values.shape[0] + 1, width), dtype=values.dtype)
    for n in range(values.shape[0]):
        tile[n + 1, :] = values[n, lo : lo + width]
    return tile


@njit(inline="always", cache=True)
def _pairs_into(volts, first, stop, pairs, rows, act, constants, divergence, sums, trace):
    """Groups ``first:stop`` into a tile's ``sums`` and ``trace`` (see `pair_field`); ``act`` is a constant at
    each call site. Rows are indexed in place, not taken as views: each view costs two atomic reference
    counts, which took as long as the arithmetic on the MNIST circuit. The tile is a fresh array indexed
    from 0 (columns of the caller's arrays from ``lo`` left the loop scalar: numba guards indices that
    might be negative)."""
    zero, half, one, alpha = constants[0], constants[1], constants[2], constants[3]
    for g in range(first, stop):
        p, q = pairs[g, 0], pairs[g, 1]
        a1, b1, c1, w1, t1 = rows[g, 0], rows[g, 1], rows[g, 2], rows[g, 3], rows[g, 4]
        a2, b2, c2, w2, t2 = rows[g, 5], rows[g, 6], rows[g, 7], rows[g, 8], rows[g, 9]
        for j in range(volts.shape[1]):
            x, y = volts[p, j], volts[q, j]
            i = w1 * _sigma(a1 * x + b1 * y + c1, act, zero, half, one, alpha)
            i += w2 * _sigma(a2 * x + b2 * y + c2, act, zero, half, one, alpha)
            sums[p, j] += i
            sums[q, j] -= i
        if divergence:
            for j in range(volts.shape[1]):
                x, y = volts[p, j], volts[q, j]
                trace[j] += t1 * _slope(a1 * x + b1 * y + c1, act, zero, one, alpha)
                trace[j] += t2 * _slope(a2 * x + b2 * y + c2, act, zero, one, alpha)


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def pair_field(volts, first, stop, pairs, rows, act, constants, divergence, sums, trace):
    """Adds the currents of groups ``first:stop`` into ``sums`` (N + 1, W), per node Σ in − Σ out before the
    1/C, and with ``divergence`` their share of tr(∂f/∂v) into ``trace`` (W,), for a tile of node voltages
    ``volts`` (N + 1, W) (ground's 0 V first).

    ``pairs`` (G, 2) int32 holds each group's nodes (p, q), p ≥ q, sorted by p; ``rows`` (G, 10) its two
    edges' ``(α, β, c, w, t)``: the current into p is w · σ(α v_p + β v_q + c) (w = ±post by the edge's
    direction) and t the divergence weight (see `kirchhoffnet.circuit._fused`). Both terminals' voltages
    are read once for two edges and both sums updated once: half the cache traffic of one edge at a time.
    Releases the GIL: threads add disjoint group ranges into sums of their own at once. Each family has its
    own copy of the loop (no branch inside it, which would defeat SIMD).
    """
    if act == RELU:
        _pairs_into(volts, first, stop, pairs, rows, RELU, constants, divergence, sums, trace)
    elif act == LEAKY:
        _pairs_into(volts, first, stop, pairs, rows, LEAKY, constants, divergence, sums, trace)
    elif act == TANH:
        _pairs_into(volts, first, stop, pairs, rows, TANH, constants, divergence, sums, trace)
    elif act == MOS:
        _pairs_into(volts, first, stop, pairs, rows, MOS, constants, divergence, sums, trace)
    else:
        _pairs_into(volts, first, stop, pairs, rows, IDENTITY, constants, divergence, sums, trace)


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


@njit(nogil=True, cache=True)
def vjp_tile(state, grad_out, lo, hi, first, stop, src, dst, coeffs, inv_c, act, constants, need_post, back, partial):
    """Edges ``first:stop``'s share of the closed-form vector-Jacobian product of the field (no divergence) on
    columns ``lo:hi``: for the cotangent ``grad_out`` (N, B), ``back`` (N + 1, hi − lo), zeroed, gains their
    ∂f/∂vᵀ·g (ground's row first) and ``partial`` (stop − first, 4) ← the columns' sums of the cotangents of
    ``(a, b, c, post)`` per edge; ``src``, ``dst`` (E,) int32 sorted by destination and ``coeffs`` (E, 5) their
    rows ``(a, b, c, post, ·)``. Writes only ``back`` and ``partial``, so threads run ranges at once (the GIL is
    released) and a range run twice gives the same bits; σ and σ' are recomputed from the voltages rather than
    read from an (edges × batch) block.
    """
    num_state = state.shape[0]
    width = hi - lo
    zero, half, one, alpha = constants[0], constants[1], constants[2], constants[3]
    volts = _tile_voltages(state, lo, width)
    scaled = _tile_voltages(grad_out, lo, width)  # g / C: the incidence folded in
    for n in range(num_state):
        scaled[n + 1, :] *= inv_c[n]
    gu = np.zeros(width, dtype=state.dtype)
    sig = np.zeros(width, dtype=state.dtype)
    for e in range(first, stop):
        s, d = src[e], dst[e]
        a, b = coeffs[e, 0], coeffs[e, 1]
        vs, vd, bs, bd = volts[s], volts[d], back[s], back[d]
        _edge_cotangents(
            gu, sig, vs, vd, scaled[s], scaled[d], a, b, coeffs[e, 2], coeffs[e, 3],
            act, zero, half, one, alpha, need_post,
        )  # fmt: skip
        _edge_sums(partial[e - first], gu, sig, bs, bd, vs, vd, a, b, zero, need_post)

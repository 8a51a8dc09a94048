"""The numba kernel behind :mod:`kirchhoffnet.circuit._fused`; importing this module imports numba.

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
        volts = np.zeros((num_state + 1, width), dtype=state.dtype)
        sums = np.zeros((num_state + 1, width), dtype=state.dtype)
        tr = np.zeros(width, dtype=state.dtype)
        for n in range(num_state):
            volts[n + 1, :] = state[n, lo : lo + width]
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

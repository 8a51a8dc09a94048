"""The numba kernels behind `kirchhoffnet.circuit._small`; importing this module imports numba.

A small circuit (≤ 16 state nodes, a few hundred edges, the 2-D flows) is evaluated edge by edge with the
whole batch as the inner loop: the node voltages and sums, (N + 1) × batch, stay in the first-level cache,
and each edge's argument, σ, σ', σ'' and its share of the sums, the divergence and the cotangents are
computed in registers. No (edges × batch) block is written, where the torch path writes four per evaluation.

σ is tanh, by the rational approximation XLA and Eigen use for float32 (odd degree-13 over even degree-6
polynomial, clamped at ±7.905): libm's tanh is a call per element that LLVM cannot vectorise, and this is
accurate to a few float32 ulps (tested against ``torch.tanh``). float32 only: the approximation is not
accurate enough for float64, which stays on the torch path.

Three rules keep the inner loops vectorised: every constant is float32 (a Python float literal turns the
arithmetic into float64), no branch inside a loop over the batch, and numpy's error model (under Python's,
numba checks every division for a zero divisor, a branch per element: 6 ns per tanh instead of 0.5).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FAST = {"nsz", "arcp", "contract", "reassoc"}
"""Reassociation lets LLVM vectorise the sums over the batch; no flag that touches NaN or infinity."""

_F = np.float32
_CLAMP = _F(7.90531110763549805)
_A1, _A3, _A5 = _F(4.89352455891786e-03), _F(6.37261928875436e-04), _F(1.48572235717979e-05)
_A7, _A9, _A11, _A13 = (
    _F(5.12229709037114e-08),
    _F(-8.60467152213735e-11),
    _F(2.00018790482477e-13),
    _F(-2.76076847742355e-16),
)
_B0, _B2, _B4, _B6 = (
    _F(4.89352518554385e-03),
    _F(2.26843463243900e-03),
    _F(1.18534705686654e-04),
    _F(1.19825839466702e-06),
)
_ONE, _TWO, _ZERO = _F(1.0), _F(2.0), _F(0.0)


@njit(inline="always", fastmath=_FAST, error_model="numpy", cache=True)
def tanh(x):
    """tanh(x) in float32 by XLA's rational approximation (``xla/service/llvm_ir/math_ops.cc``)."""
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = p * x2 + _A9
    p = p * x2 + _A7
    p = p * x2 + _A5
    p = p * x2 + _A3
    p = p * x2 + _A1
    q = x2 * _B6 + _B4
    q = q * x2 + _B2
    q = q * x2 + _B0
    return x * p / q


@njit(fastmath=_FAST, error_model="numpy", cache=True)
def tanh_array(x, out):
    """`tanh` elementwise over a 1-D float32 array (for the tests)."""
    for j in range(x.shape[0]):
        out[j] = tanh(x[j])


@njit(inline="always", fastmath=_FAST, error_model="numpy", cache=True)
def _scaled(sums, inv_c, out):
    """``out`` (N, B) = the node sums (N + 1, B) without ground's row, each scaled by its node's 1/C."""
    for n in range(1, sums.shape[0]):
        w, row, target = inv_c[n], sums[n], out[n - 1]
        for j in range(sums.shape[1]):
            target[j] = w * row[j]


@njit(fastmath=_FAST, error_model="numpy", cache=True)
def field(v, src, dst, starts, coeffs, inv_c, divergence, out, trace):
    """dV/dt into ``out`` (N, B) and, with ``divergence``, tr(∂f/∂v) into ``trace`` (B,).

    ``v`` (N + 1, B) holds the voltages with ground's zero row first; the edges are grouped by terminal
    pair, group g being edges ``starts[g]:starts[g + 1]`` of ``src``, ``dst`` and ``coeffs`` (E, 4)
    ``(a, b, c, post)``; ``inv_c`` (N + 1,) is ``[node ≠ 0] / C``. A group's currents are summed in one
    row and added to its two nodes once; the node sums are scaled by 1/C at the end."""
    nodes, batch = v.shape
    sums = np.zeros((nodes, batch), dtype=v.dtype)
    current = np.empty(batch, dtype=v.dtype)
    trace[:] = _ZERO
    for g in range(starts.shape[0] - 1):
        s, d = src[starts[g]], dst[starts[g]]
        vs, vd = v[s], v[d]
        current[:] = _ZERO
        for e in range(starts[g], starts[g + 1]):
            a, b, c, post = coeffs[e, 0], coeffs[e, 1], coeffs[e, 2], coeffs[e, 3]
            if divergence:
                q = post * (inv_c[d] * b - inv_c[s] * a)  # tr = Σ_e q_e σ'(u_e)
                for j in range(batch):
                    t = tanh(a * vs[j] + b * vd[j] + c)
                    current[j] += post * t
                    trace[j] += q * (_ONE - t * t)
            else:
                for j in range(batch):
                    current[j] += post * tanh(a * vs[j] + b * vd[j] + c)
        into, out_of = sums[d], sums[s]
        for j in range(batch):
            into[j] += current[j]
            out_of[j] -= current[j]
    _scaled(sums, inv_c, out)


@njit(fastmath=_FAST, error_model="numpy", cache=True)
def vjp(v, grad_v, grad_trace, src, dst, starts, order, coeffs, inv_c, grad_state, grad_coeffs, out, trace):
    """The vector-Jacobian product of `field` for the cotangents ``grad_v`` (N + 1, B; ground's row zero, each
    row already scaled by its node's 1/C) and ``grad_trace`` (B,; zeros without the divergence), and `field`
    itself at the same pass (the adjoint solve needs both; computing σ once for the two saves a third). One loop
    serves both: without the divergence its terms are a few multiplications by zero.

    Writes ``grad_state`` (N + 1, B), ``grad_coeffs`` (E, 4) for ``(a, b, c, post)`` in the edges' original
    order (edge ``e`` here is ``order[e]`` there), and ``out`` (N, B) and ``trace`` (B,) as `field` does. Per edge,
    with ``t = σ(u)``, ``back = gV[d] − gV[s]`` (Mᵀ gV) and ``q0 = w_d b − w_s a``:
    ``gu = post·back·σ' + post·q0·gT·σ''``, ``g_state[s] += a gu``, ``g_state[d] += b gu``,
    ``g(a, b, c) = Σ gu (v_s, v_d, 1) + Σ σ'·gT · post (−w_s, w_d, 0)``, ``g_post = Σ back·t + Σ σ'·gT · q0``."""
    nodes, batch = v.shape
    grad_state[:] = _ZERO
    trace[:] = _ZERO
    sums = np.zeros((nodes, batch), dtype=v.dtype)
    current = np.empty(batch, dtype=v.dtype)
    back = np.empty(batch, dtype=v.dtype)
    pull_s = np.empty(batch, dtype=v.dtype)
    pull_d = np.empty(batch, dtype=v.dtype)
    for g in range(starts.shape[0] - 1):
        s, d = src[starts[g]], dst[starts[g]]
        ws, wd = inv_c[s], inv_c[d]
        vs, vd, gs, gd = v[s], v[d], grad_v[s], grad_v[d]
        for j in range(batch):
            back[j] = gd[j] - gs[j]
        current[:] = _ZERO
        pull_s[:] = _ZERO
        pull_d[:] = _ZERO
        for e in range(starts[g], starts[g + 1]):
            a, b, c, post = coeffs[e, 0], coeffs[e, 1], coeffs[e, 2], coeffs[e, 3]
            q0 = wd * b - ws * a
            q = post * q0
            curve = _TWO * q
            sum_vs = sum_vd = sum_u = sum_post = sum_reach = _ZERO
            for j in range(batch):
                t = tanh(a * vs[j] + b * vd[j] + c)
                slope = _ONE - t * t
                reach = slope * grad_trace[j]
                gu = post * back[j] * slope - curve * t * reach
                current[j] += post * t
                trace[j] += q * slope
                pull_s[j] += a * gu
                pull_d[j] += b * gu
                sum_vs += gu * vs[j]
                sum_vd += gu * vd[j]
                sum_u += gu
                sum_post += back[j] * t
                sum_reach += reach
            k = order[e]
            grad_coeffs[k, 0] = sum_vs - post * ws * sum_reach
            grad_coeffs[k, 1] = sum_vd + post * wd * sum_reach
            grad_coeffs[k, 2] = sum_u
            grad_coeffs[k, 3] = sum_post + q0 * sum_reach
        into_s, into_d, sum_s, sum_d = grad_state[s], grad_state[d], sums[s], sums[d]
        for j in range(batch):
            into_s[j] += pull_s[j]
            into_d[j] += pull_d[j]
            sum_d[j] += current[j]
            sum_s[j] -= current[j]
    _scaled(sums, inv_c, out)

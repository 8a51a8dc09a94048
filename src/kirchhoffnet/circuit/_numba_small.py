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


# One trial step of an explicit Runge–Kutta pair per call (the fused integrator's dopri5, `solve._fused_rk`): the
# stage combinations, the stage evaluations, the error estimate and its norm without returning to Python, where
# each of them was a few small tensor operations and the per-call cost of the kernels' dispatch. The tableau and the
# step size come in as ``table`` (S, S): row i − 1 holds stage i's weights on stages 0..i − 1 (the last stage is the
# solution, first same as last), the last row the error weights, all times the step size. ``rates`` and ``states``
# (S, W) hold each stage's rate and state, flattened; ``rates[0]`` (the previous step's last) is given.


@njit(inline="always", fastmath=_FAST, error_model="numpy", cache=True)
def _combine(y, table, rates, states, i):
    """``states[i] = y + Σ_{k<i} table[i − 1, k] rates[k]`` (stage 0: ``y``)."""
    stage = states[i]
    stage[:] = y
    for k in range(i):
        w, rate = table[i - 1, k], rates[k]
        for j in range(stage.shape[0]):
            stage[j] += w * rate[j]


@njit(fastmath=_FAST, error_model="numpy", cache=True)
def _error_ratio(table, rates, y, y1, rtol, atol, groups):
    """The error estimate over the tolerance ``atol + rtol·max(|y|, |y1|)`` under the largest RMS of the ``groups``
    (G, 2) ``[start, stop)`` ranges of the flattened state, and whether ``y1`` is finite."""
    stages, width = rates.shape
    error = np.zeros(width, dtype=np.float64)
    for k in range(stages):
        w = np.float64(table[stages - 1, k])
        rate = rates[k]
        for j in range(width):
            error[j] += w * rate[j]
    finite = True
    for j in range(width):
        finite = finite and np.isfinite(y1[j])
    ratio = 0.0
    for g in range(groups.shape[0]):
        start, stop = groups[g, 0], groups[g, 1]
        total = 0.0
        for j in range(start, stop):
            scaled = error[j] / (atol + rtol * max(abs(np.float64(y[j])), abs(np.float64(y1[j]))))
            total += scaled * scaled
        rms = np.sqrt(total / (stop - start))
        if not rms <= ratio:  # a NaN wins, as under torch.maximum: the step is then rejected
            ratio = rms
    return ratio, finite


@njit(inline="always", fastmath=_FAST, error_model="numpy", cache=True)
def _field_rate(rate, out, trace, s, divergence):
    """A stage's rate ``s·(f, −tr)``: the field's state rows, then (with the divergence) the log-density row."""
    batch = out.shape[1]
    for n in range(out.shape[0]):
        for j in range(batch):
            rate[n * batch + j] = s * out[n, j]
    if divergence:
        last = out.shape[0] * batch
        for j in range(batch):
            rate[last + j] = -s * trace[j]


@njit(fastmath=_FAST, error_model="numpy", cache=True)
def rk_field(y, table, rates, states, src, dst, starts, coeffs, inv_c, divergence, sign, rtol, atol, groups):
    """A trial step of ``dy/dt = sign·(f, −tr)`` (or ``sign·f`` without the divergence), ``y`` (R, B) flattened with
    R = N (+ 1: the log-density row); returns the error ratio and whether the solution ``states[-1]`` is finite."""
    nodes = inv_c.shape[0]
    batch = y.shape[0] // (nodes if divergence else nodes - 1)
    s = np.float32(sign)
    padded = np.zeros((nodes, batch), dtype=np.float32)
    out = np.empty((nodes - 1, batch), dtype=np.float32)
    trace = np.empty(batch, dtype=np.float32)
    _combine(y, table, rates, states, 0)
    for i in range(1, rates.shape[0]):
        _combine(y, table, rates, states, i)
        stage, rate = states[i], rates[i]
        for n in range(1, nodes):
            for j in range(batch):
                padded[n, j] = stage[(n - 1) * batch + j]
        field(padded, src, dst, starts, coeffs, inv_c, divergence, out, trace)
        _field_rate(rate, out, trace, s, divergence)
    return _error_ratio(table, rates, y, states[-1], rtol, atol, groups)


@njit(fastmath=_FAST, error_model="numpy", cache=True)
def rk_adjoint(
    y, table, rates, states, src, dst, starts, order, coeffs, inv_c, divergence, sign, mapping, rtol, atol, groups
):
    """A trial step of the adjoint solve's augmented state ``(y, a, θ-adjoint)``: ``y`` and ``a`` (R, B) and the
    learned coefficients' adjoints (L, E), flattened one after the other; with ``f`` and ``tr`` at ``y`` and
    ``(gV, gT) = (−a_v, a_p)``, the rate is ``sign·(f, −tr; vjp_v; mapping · vjp_coeffs)`` (``a_p``'s rate zero),
    ``mapping`` (L, 4) taking the kernel's ``(a, b, c, post)`` cotangents to the learned rows. Returns the error
    ratio and whether the solution is finite."""
    nodes = inv_c.shape[0]
    edges = coeffs.shape[0]
    rows = nodes if divergence else nodes - 1
    size = (y.shape[0] - mapping.shape[0] * edges) // 2
    batch = size // rows
    s = np.float32(sign)
    out = np.empty((nodes - 1, batch), dtype=np.float32)
    trace = np.empty(batch, dtype=np.float32)
    v = np.zeros((nodes, batch), dtype=np.float32)
    grad_v = np.zeros((nodes, batch), dtype=np.float32)
    grad_trace = np.zeros(batch, dtype=np.float32)
    grad_state = np.empty((nodes, batch), dtype=np.float32)
    grad_coeffs = np.empty((edges, 4), dtype=np.float32)
    _combine(y, table, rates, states, 0)
    for i in range(1, rates.shape[0]):
        _combine(y, table, rates, states, i)
        stage, rate = states[i], rates[i]
        for n in range(1, nodes):
            w = inv_c[n]
            for j in range(batch):
                v[n, j] = stage[(n - 1) * batch + j]
                grad_v[n, j] = -w * stage[size + (n - 1) * batch + j]
        if divergence:
            for j in range(batch):
                grad_trace[j] = stage[size + (nodes - 1) * batch + j]
        vjp(v, grad_v, grad_trace, src, dst, starts, order, coeffs, inv_c, grad_state, grad_coeffs, out, trace)
        _field_rate(rate, out, trace, s, divergence)
        for n in range(nodes - 1):
            for j in range(batch):
                rate[size + n * batch + j] = s * grad_state[n + 1, j]
        if divergence:
            for j in range(batch):
                rate[size + (nodes - 1) * batch + j] = _ZERO
        for row in range(mapping.shape[0]):
            base = 2 * size + row * edges
            m0, m1, m2, m3 = s * mapping[row, 0], s * mapping[row, 1], s * mapping[row, 2], s * mapping[row, 3]
            for e in range(edges):
                rate[base + e] = (
                    m0 * grad_coeffs[e, 0] + m1 * grad_coeffs[e, 1] + m2 * grad_coeffs[e, 2] + m3 * grad_coeffs[e, 3]
                )
    return _error_ratio(table, rates, y, states[-1], rtol, atol, groups)

"""The solve that ``torch.export`` and ``torch.compile`` can trace: fixed-step Runge-Kutta in pure torch ops.

The eager solve (`kirchhoffnet.solve.simulate`) is built for speed and for clear failures, and
both get in a tracer's way: torchdiffeq builds its grid with ``.item()``, each slice ends on a
``bool(isfinite(...))`` check, the NFE counters are Python integers, the KCL kernels are cached on
value snapshots (``torch.equal``), cut into cache-sized chunks and may dispatch to numba. While a
module is being exported or compiled (``torch.compiler.is_compiling()``), a fixed-step solve takes
this path instead: the same steps as torchdiffeq's fixed-grid solvers (same grid, same Butcher
tableaux, so eager and traced agree to rounding), each stage the KCL right-hand side in
plain tensor ops (`kcl_field`), with no host synchronisation anywhere.

What it leaves out, and why:

* adaptive methods: their step count depends on the data, which a static graph cannot hold;
* the Adams methods: multistep, with an implicit corrector iterated to a tolerance;
* the finite checks: a graph cannot raise; a blow-up comes out as NaN/inf in the outputs;
* solve statistics: a compiled graph runs no Python per call; the counts are the static ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.circuit import Circuit, Slice
from kirchhoffnet.circuit._affine import affine_rows
from kirchhoffnet.circuit._kcl import DENSE_MAX_NODES
from kirchhoffnet.devices import AffineActivation
from kirchhoffnet.solve.solver import Solver

# Explicit Runge-Kutta tableaux (A below the diagonal, b) of torchdiffeq's fixed-grid methods; rk4 is its
# 3/8-rule variant (``rk4_alt_step_func``), heun3 and heun2 its tables of the same names.
TABLEAUX: dict[str, tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]] = {
    "euler": (((),), (1.0,)),
    "midpoint": (((), (0.5,)), (0.0, 1.0)),
    "heun2": (((), (1.0,)), (0.5, 0.5)),
    "heun3": (((), (1 / 3,), (0.0, 2 / 3)), (0.25, 0.0, 0.75)),
    "rk4": (((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)), (0.125, 0.375, 0.375, 0.125)),
}


def traceable(solver: Solver) -> str | None:
    """``None`` if a solve with ``solver`` can be traced, else why not (the middle of an error message)."""
    if solver.adaptive:
        return (
            f"adaptive method {solver.method!r} chooses its step count from the data, which a static graph cannot hold"
        )
    if solver.method not in TABLEAUX:
        return f"multistep method {solver.method!r} iterates its corrector to a tolerance"
    return None


@torch.compiler.assume_constant_result  # plain numbers: torch.compile runs it, not traces it
def step_sizes(start: float, end: float, step_size: float, dtype: torch.dtype) -> list[float]:
    """The steps torchdiffeq's fixed grid takes from ``start`` to ``end``: ``step_size`` apart in the solve's
    time dtype, the last one cut to land on ``end``, one step where the slice is shorter than one."""
    real = np.dtype(np.float64 if dtype == torch.float64 else np.float32)
    t0, t1, h = np.array([start, end, min(step_size, abs(end - start))], dtype=real)
    count = int(np.ceil((t1 - t0) / h + 1))
    grid = np.arange(count, dtype=real) * h + t0
    grid[-1] = t1
    return [float(dt) for dt in np.diff(grid)]


def kcl_field(piece: Slice, v: Tensor) -> Tensor:
    """dv/dt (B, N) for voltages (B, N): each edge's current added into its destination node and taken from
    its source, over the node capacitance, ground's sum dropped; the reference path's structure in ops a
    tracer keeps. Small circuits (up to the kernel's dense limit of state nodes) sum by a dense incidence
    product, and an affine-activation family gathers and maps its terminal voltages by one product with the
    kernel's ``G`` (see `kirchhoffnet.circuit._kcl`): compiled, that is 2-3x faster than indexing.
    Larger circuits, whose dense operators would be O(N·E), index and ``index_add``."""
    family, params = piece.device_family, piece.params.to(v.dtype)
    src, dst = piece.edge_index[0], piece.edge_index[1]
    if piece.num_state > DENSE_MAX_NODES:
        current = piece.currents(v)
        net = v.new_zeros(v.shape[0], piece.num_nodes).index_add(1, dst, current).index_add(1, src, -current)
        return net[:, 1:] / piece.capacitance.to(v.dtype)
    nodes = torch.arange(piece.num_nodes, device=v.device)
    incidence = (dst[:, None] == nodes).to(v.dtype) - (src[:, None] == nodes).to(v.dtype)
    incidence = incidence[:, 1:] / piece.capacitance.to(v.dtype)  # (E, N): Mᵀ of the kernel
    if not isinstance(family, AffineActivation):
        return piece.currents(v) @ incidence
    a, b, c, post = family.coefficients(params)
    rows = affine_rows(a, b, c, v.new_ones(piece.num_edges))
    columns = torch.stack([src, dst, torch.full_like(src, piece.num_nodes)], dim=1)  # the bias is the last column
    gather = v.new_zeros(piece.num_edges, piece.num_nodes + 1).scatter(1, columns, rows)  # G (E, N + 2)
    augmented = torch.cat([v.new_zeros(v.shape[0], 1), v, v.new_ones(v.shape[0], 1)], dim=1)
    current = family.activation(augmented @ gather.T, inplace=False)
    return current @ (incidence if post is None else incidence * post[:, None])


def _rk_step(piece: Slice, v: Tensor, dt: float, method: str) -> Tensor:
    rows, weights = TABLEAUX[method]
    stages: list[Tensor] = []
    for row in rows:
        shifted = v
        for a, k in zip(row, stages, strict=True):
            if a != 0.0:
                shifted = shifted + (dt * a) * k
        stages.append(kcl_field(piece, shifted))
    step = torch.zeros_like(v)
    for w, k in zip(weights, stages, strict=True):
        if w != 0.0:
            step = step + w * k
    return v + dt * step


def traced_simulate(circuit: Circuit, x: Tensor, solver: Solver) -> tuple[Tensor, list[int]]:
    """``simulate``'s forward solve for a ``solver`` that `traceable` accepts, in traceable ops.

    Returns:
        ``(v, nfe)``: the (B, N) final voltages, decoded by ``circuit.encoding``, and the evaluations each slice took.
    """
    assert solver.step_size is not None and solver.method in TABLEAUX  # checked by traceable()
    time_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    v = circuit.input_state(x).T
    saved: Tensor | None = None
    nfe = []
    for k in range(circuit.num_slices):
        piece = circuit.slice(k)
        v = circuit.resize(v.T, piece.num_state).T
        steps = step_sizes(circuit.times[k], circuit.times[k + 1], solver.step_size, time_dtype)
        for dt in steps:
            v = _rk_step(piece, v, dt, solver.method)
        nfe.append(len(steps) * len(TABLEAUX[solver.method][1]))
        if circuit.residual is not None:
            if k == circuit.residual[0]:
                saved = v
            if k == circuit.residual[1] and saved is not None:  # residual[0] < residual[1]: always saved
                v = v + saved
    return circuit.encoding.decode(v), nfe

"""The strongest peer we know of: the same KCL field in jax.numpy, jit-compiled, solved by diffrax.

The field is written from a slice's ``edge_index`` and parameters alone: gather the terminal voltages,
apply the device law, scatter the currents into the nodes (``segment_sum``), divide by the capacitance;
the exact divergence is Σ_e σ'(u_e)·(b_e/C_dst − a_e/C_src). Solved by diffrax's Dopri5 under a
``PIDController`` at the same tolerances and first step as kirchhoffnet, the error measured with the same
mixed norm max(rms(v), rms(log p)), and differentiated by backprop through the solver
(``RecursiveCheckpointAdjoint``). Needs the ``bench`` extra (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import torch

import kirchhoffnet as kn


def slice_arrays(piece: kn.Slice) -> dict[str, Any]:
    """The slice's topology, law coefficients (a, b, c, post) and inverse capacitances as JAX arrays."""
    family = piece.device_family
    with torch.no_grad():
        a, b, c, post = family.coefficients(piece.params.detach().float())
    edges = piece.num_edges

    def column(value: Any, default: float) -> np.ndarray:
        return np.full(edges, default, np.float32) if value is None else value.numpy().astype(np.float32)

    if b is None:  # the difference form a·(v_src − v_dst)
        a_col = column(a, 1.0)
        b_col = -a_col
    else:
        a_col, b_col = column(a, 1.0), column(b, 1.0)
    inv_c = np.concatenate([[0.0], 1.0 / piece.capacitance.numpy()]).astype(np.float32)  # ground: no state
    return {
        "src": jnp.asarray(piece.edge_index[0].numpy().astype(np.int32)),
        "dst": jnp.asarray(piece.edge_index[1].numpy().astype(np.int32)),
        "coeffs": jnp.asarray(np.stack([a_col, b_col, column(c, 0.0), column(post, 1.0)])),
        "inv_c": jnp.asarray(inv_c),
        "activation": family.fused_activation,
    }


def circuit_arrays(circuit: kn.Circuit) -> tuple[list[dict[str, Any]], list[Any]]:
    """Every slice's fixed arrays, and its coefficients apart (the argument a gradient is taken in)."""
    arrays = [slice_arrays(piece) for piece in circuit.slices]
    return arrays, [slice.pop("coeffs") for slice in arrays]


def _sigma(name: str, u: Any) -> tuple[Any, Any]:
    """σ(u) and σ'(u) for the activations of the paper's families."""
    if name == "tanh":
        t = jnp.tanh(u)
        return t, 1.0 - t * t
    if name == "relu":
        return jnp.maximum(u, 0.0), (u > 0).astype(u.dtype)
    if name == "identity":
        return u, jnp.ones_like(u)
    raise SystemExit(f"the JAX peer has no activation {name!r}")


def field(arrays: dict[str, Any], coeffs: Any, v: Any, divergence: bool) -> tuple[Any, Any]:
    """dV/dt (N, B) of the node-major state ``v`` (N, B) and, with ``divergence``, tr(∂f/∂v) (B,)."""
    src, dst, inv_c = arrays["src"], arrays["dst"], arrays["inv_c"]
    nodes = inv_c.shape[0]
    padded = jnp.concatenate([jnp.zeros((1, v.shape[1]), v.dtype), v])
    a, b, c, post = coeffs[0][:, None], coeffs[1][:, None], coeffs[2][:, None], coeffs[3][:, None]
    u = a * padded[src] + b * padded[dst] + c
    out, slope = _sigma(arrays["activation"], u)
    current = post * out
    kcl = jax.ops.segment_sum(current, dst, nodes) - jax.ops.segment_sum(current, src, nodes)
    dv = (kcl * inv_c[:, None])[1:]
    if not divergence:
        return dv, None
    weight = post * (b * inv_c[dst][:, None] - a * inv_c[src][:, None])
    return dv, (weight * slope).sum(0)


def _solve(
    arrays: dict[str, Any], coeffs: Any, y0: Any, span: tuple[float, float], solver: kn.Solver, divergence: bool
) -> tuple[Any, Any]:
    """One slice from span[0] to span[1]: the final state and the number of steps taken."""

    def vector_field(t: Any, y: Any, args: Any) -> Any:
        if not divergence:
            return field(arrays, coeffs, y, False)[0]
        dv, trace = field(arrays, coeffs, y[0], True)
        return dv, -trace

    def norm(y: Any) -> Any:  # torchdiffeq's mixed norm of the tuple (v, log p), as kirchhoffnet uses
        if not divergence:
            return jnp.sqrt(jnp.mean(y * y))
        return jnp.maximum(jnp.sqrt(jnp.mean(y[0] * y[0])), jnp.sqrt(jnp.mean(y[1] * y[1])))

    direction = 1.0 if span[1] > span[0] else -1.0
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        diffrax.Dopri5(),
        t0=span[0],
        t1=span[1],
        dt0=direction * solver.first_step if solver.first_step else None,
        y0=y0,
        stepsize_controller=diffrax.PIDController(
            rtol=solver.rtol, atol=solver.atol, dtmin=solver.min_step or None, norm=norm
        ),
        adjoint=diffrax.RecursiveCheckpointAdjoint(),
        max_steps=4096,
    )
    final = jax.tree_util.tree_map(lambda leaf: leaf[-1], solution.ys)  # diffrax saves t1 only
    return final, solution.stats["num_steps"]


class FlowPeer:
    """A `kn.Flow`'s negative log-likelihood and its gradient in the coefficients, in JAX."""

    def __init__(self, flow: kn.Flow) -> None:
        circuit = flow.circuit
        self.arrays, self.coeffs = circuit_arrays(circuit)
        times, solver, dim = circuit.times, flow.solver, flow.dim

        def nll(coeffs: list[Any], x: Any) -> tuple[Any, Any]:
            state, log_det, steps = x.T, jnp.zeros(x.shape[0], x.dtype), []
            for k in range(len(coeffs) - 1, -1, -1):  # data → base: the slices backwards in time
                (state, log_det), taken = _solve(
                    self.arrays[k], coeffs[k], (state, log_det), (times[k + 1], times[k]), solver, True
                )
                steps.append(taken)
            base = -0.5 * (state * state).sum(0) - 0.5 * dim * np.log(2.0 * np.pi)
            return -(base - log_det).mean(), jnp.stack(steps[::-1])

        self.loss = jax.jit(nll)
        self.loss_and_grad = jax.jit(jax.value_and_grad(nll, has_aux=True))

    def step(self, x: Any) -> tuple[float, np.ndarray]:
        """One training step's loss and gradient (blocked on, so that it can be timed); the loss and the
        steps per slice."""
        (loss, steps), grads = self.loss_and_grad(self.coeffs, x)
        jax.block_until_ready(grads)
        return float(loss), np.asarray(steps)


class NetworkPeer:
    """A `kn.Network`'s forward solve (no gradient), in JAX: the final voltages of the last slice."""

    def __init__(self, network: kn.Network) -> None:
        circuit = network.circuit
        if circuit.residual is not None or len(set(circuit.widths)) != 1:
            raise SystemExit("the JAX peer covers circuits of one width and no residual")
        self.arrays, self.coeffs = circuit_arrays(circuit)
        times, solver = circuit.times, network.solver

        def forward(coeffs: list[Any], state: Any) -> tuple[Any, Any]:
            steps = []
            for k in range(len(coeffs)):
                state, taken = _solve(self.arrays[k], coeffs[k], state, (times[k], times[k + 1]), solver, False)
                steps.append(taken)
            return state.T, jnp.stack(steps)

        self.forward = jax.jit(forward)
        self.rhs = jax.jit(lambda coeffs, state: field(self.arrays[0], coeffs, state, False)[0])

    def __call__(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Final voltages (B, N) of the node-major initial state (N, B), and the steps per slice."""
        v, steps = self.forward(self.coeffs, state)
        return np.array(v), np.asarray(steps)  # a writable copy: torch.from_numpy warns on read-only arrays

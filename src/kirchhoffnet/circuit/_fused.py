"""The ``fused`` kernel path: one numba pass over the edges per batch tile, for large circuits on CPU.

The torch paths write at least one (edges × batch) block per evaluation and read it back; on the
230k-edge MNIST circuit at batch 250 that traffic, not the arithmetic, is the cost. Here the edges
are sorted by destination once (int32 indices), and each batch tile's voltages and KCL sums stay in
cache while every edge's current is computed and added in registers (`_numba_kcl`). It evaluates
the field and the divergence of the built-in affine-activation families, and the field's
vector-Jacobian product (the closed-form backward pass of the ``affine-vjp`` node and the analytic
adjoint, σ recomputed per tile); anything else stays on the torch paths, which remain the reference.

numba is imported on first use only, so small circuits and training never pay its import.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.circuit._affine import trace_weights
from kirchhoffnet.circuit._snapshot import Snapshot
from kirchhoffnet.devices import AffineActivation, Device

if TYPE_CHECKING:
    from kirchhoffnet.circuit._chunk import Chunk

Coefficients = Callable[[AffineActivation, Tensor], tuple[Tensor, Tensor | None]]
"""The kernel's (E, 3) ``(a, b, c)`` and ``post`` of a family's parameters (absent ones filled in)."""

# A tile's voltages and sums, (N + 1) × tile each, are meant to fit this many bytes (a core's L2
# here is 1 MiB). Measured on the MNIST circuit (835 nodes, float32, batch 250, 1 thread, one run):
# tiles of 96 columns took 14.9 ms per RHS, 128 took 13.8 ms.
_TILE_BYTES = 1 << 20
_MAX_TILE = 128
_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "mos_relu": 4}  # as in _numba_kcl
# numba calls libm's tanh one element at a time (no vector math library by default): on the MNIST
# circuit the fused tanh took 0.7–1.4× the time of the ``affine`` path, so ``auto`` leaves tanh there.
_AUTO = {"identity", "relu", "leaky_relu", "mos_relu"}


MIN_EDGES = 1000
"""From this many edges on, ``auto`` takes the fused kernel: 1.4–8× faster than ``affine`` from 100 edges
(relu, batch 32–250, 1 thread), but below this the gain is less than importing numba once."""


@functools.cache
def numba_kernel() -> ModuleType | None:
    """The compiled-kernel module, or ``None`` when numba cannot be imported."""
    try:
        from kirchhoffnet.circuit import _numba_kcl
    except ImportError:
        return None
    return _numba_kcl


def _activation(device: Device) -> str | None:
    """The family's σ as the kernel names it, or ``None`` when the kernel does not implement it.

    A family names its σ in ``fused_activation``; a subclass that overrides ``activation`` without
    naming its own σ is not trusted with its parent's name.
    """
    if not isinstance(device, AffineActivation):
        return None
    owner = next(cls for cls in type(device).__mro__ if "fused_activation" in vars(cls))
    if getattr(type(device), "activation") is not getattr(owner, "activation"):  # noqa: B009
        return None
    name: str | None = vars(owner)["fused_activation"]
    return name


def activation_code(device: Device) -> int | None:
    """The kernel's code for the family's σ, or ``None`` when the kernel does not implement it."""
    name = _activation(device)
    return None if name is None else _CODES[name]


def preferred(device: Device) -> bool:
    """Whether ``auto`` should take the fused path for this family (where it applies at all)."""
    return _activation(device) in _AUTO


def refusal(device: Device, where: torch.device, dtype: torch.dtype, transformed: bool) -> str | None:
    """Why the fused path cannot evaluate ``device`` here (``transformed``: autograd records inside
    torch.func, where the hand-written backward cannot run), or ``None`` when it can."""
    if transformed:
        return "has no backward pass inside torch.func transforms; use kernel 'auto' or 'gather'"
    if where.type != "cpu":
        return f"runs on CPU only, not {where.type}"
    if dtype not in (torch.float32, torch.float64):
        return f"computes in float32 or float64, not {dtype}"
    if activation_code(device) is None:
        return f"does not implement device family {device.name}"
    if numba_kernel() is None:
        return "needs numba, which cannot be imported (pip install numba)"
    return None


class FusedKcl:
    """One slice's topology sorted for the fused kernel, and its coefficients per parameter version.

    Args:
        whole: the kernel's chunk of all edges (CPU): their terminals and ``[node ≠ 0] / C`` weights.
        inv_c: (N + 1,) ``[node ≠ 0] / C`` per node, ground first, in the kernel's dtype.
        coefficients: the kernel's own ``(a, b, c)`` and ``post`` of a family's parameters.
    """

    def __init__(self, whole: Chunk, inv_c: Tensor, coefficients: Coefficients) -> None:
        src, dst = whole.src, whole.dst
        self.order = torch.argsort(dst * len(inv_c) + src)
        self.src = src[self.order].to(torch.int32).numpy()
        self.dst = dst[self.order].to(torch.int32).numpy()
        self.inv_c = inv_c[1:].contiguous().numpy()
        self.whole, self.dtype, self._coefficients = whole, inv_c.dtype, coefficients
        self._cache: tuple[tuple[object, ...], Snapshot, np.ndarray] | None = None

    def rows(self, abc: Tensor, post: Tensor | None) -> np.ndarray:
        """(E, 5) kernel rows ``(a, b, c, post, q)`` in sorted order for coefficient rows ``abc`` (E, 3)."""
        with torch.no_grad():
            q = trace_weights(self.whole, abc, post)
            post = torch.ones_like(q) if post is None else post
            return torch.cat([abc, post[:, None], q[:, None]], dim=1)[self.order].to(self.dtype).contiguous().numpy()

    def coefficients(self, device: AffineActivation, params: Tensor) -> np.ndarray:
        """`rows` of a family's parameters, kept while they hold the same values (a
        `Snapshot`: ``p.data`` edits bypass torch's change markers)."""
        key = (params.dtype, device)
        if self._cache is None or self._cache[0] != key or not self._cache[1].matches(params):
            with torch.no_grad():
                rows = self.rows(*self._coefficients(device, params.to(self.dtype)))
            self._cache = (key, Snapshot(params), rows)
        return self._cache[2]

    def evaluate(
        self, device: AffineActivation, params: Tensor, state: Tensor, divergence: bool
    ) -> tuple[Tensor, Tensor | None]:
        """dV/dt (N, B) and, if asked, the divergence (B,) for node-major ``state`` (N, B), no autograd."""
        return self.field(device, self.coefficients(device, params), state, divergence)

    def field(
        self, device: AffineActivation, rows: np.ndarray, state: Tensor, divergence: bool
    ) -> tuple[Tensor, Tensor | None]:
        """`evaluate` for kernel rows (see `rows`)."""
        num_state, batch = state.shape
        out = state.new_empty(num_state, batch)
        trace = state.new_empty(batch if divergence else 0)
        with _Launch(device, state, self.inv_c.dtype) as (kernel, code, constants, tile):
            kernel.kcl_tiles(
                _array(state), *self._edges(rows), code, constants, tile, divergence, out.numpy(), trace.numpy()
            )
        return out, trace if divergence else None

    def _edges(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """The kernels' edge arguments: sorted terminals, kernel rows, inverse capacitances."""
        return self.src, self.dst, rows, self.inv_c

    def vjp(
        self, device: AffineActivation, rows: np.ndarray, state: Tensor, grad_out: Tensor, need_post: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The closed-form vector-Jacobian product of `field` (no divergence) for the cotangent
        ``grad_out`` (N, B): ``(g_state (N, B), g_coeffs (E, 3), g_post (E,))`` in the kernel's edge
        order (``g_post`` is zero unless ``need_post``). One pass per batch tile, like the field."""
        num_state, batch = state.shape
        grad_state = state.new_empty(num_state, batch)
        with _Launch(device, state, self.inv_c.dtype) as (kernel, code, constants, tile):
            partial = np.empty((-(-batch // tile), len(self.src), 4), dtype=self.inv_c.dtype)
            edges = self._edges(rows)
            kernel.vjp_tiles(
                _array(state), _array(grad_out), *edges, code, constants, tile, need_post, grad_state.numpy(), partial
            )
        grads = torch.empty(len(self.src), 4, dtype=state.dtype)
        grads[self.order] = torch.from_numpy(partial).sum(0)
        return grad_state, grads[:, :3], grads[:, 3]


def _array(values: Tensor) -> np.ndarray:
    """A tensor's values as the contiguous NumPy array numba reads (no copy where already so)."""
    return values.detach().contiguous().numpy()


class _Launch:
    """One kernel launch: the compiled module, the family's code and constants, a batch tile that keeps
    two (N + 1)-row blocks in cache, numba on torch's thread count, and that count put back afterwards
    (numba's OpenMP layer can share torch's libgomp and set its thread count when it starts:
    OMP_NUM_THREADS=1 became 2 here). The vector-Jacobian product keeps three blocks, yet runs faster
    on the same tile than on one sized for three (MNIST circuit, batch 256, 1 thread: 44 against 58 ms)."""

    def __init__(self, device: AffineActivation, state: Tensor, dtype: np.dtype) -> None:
        self.kernel, self.code = numba_kernel(), activation_code(device)
        assert self.kernel is not None and self.code is not None  # the caller checked refusal()
        num_state, batch = state.shape
        self.threads = torch.get_num_threads()
        per_thread = -(-batch // self.threads)
        tile = _TILE_BYTES // (2 * (num_state + 1) * state.element_size())
        self.tile = max(8, min(_MAX_TILE, tile // 16 * 16, -(-per_thread // 8) * 8))
        alpha = float(getattr(device, "negative_slope", 0.0))
        self.constants = np.array([0.0, 0.5, 1.0, alpha], dtype=dtype)

    def __enter__(self) -> tuple[ModuleType, int, np.ndarray, int]:
        assert self.kernel is not None and self.code is not None
        self.kernel.set_threads(self.threads)
        return self.kernel, self.code, self.constants, self.tile

    def __exit__(self, *_: object) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

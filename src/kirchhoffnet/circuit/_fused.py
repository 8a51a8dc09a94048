"""The ``fused`` kernel path: one numba pass over the edges per batch tile, for large circuits on CPU.

The torch paths write at least one (edges × batch) block per evaluation and read it back; on the
230k-edge MNIST circuit at batch 250 that traffic, not the arithmetic, is the cost. Here each batch
tile's voltages and KCL sums stay in cache while every edge's current is computed and added in
registers (`_numba_kcl`): the field visits the edges two at a time, both joining the same pair of
nodes, so one read of the pair's voltages and one update of its two sums serve two currents; the
vector-Jacobian product visits them sorted by destination (int32 indices throughout). It evaluates
the field and the divergence of the built-in affine-activation families, and the field's
vector-Jacobian product (the closed-form backward pass of the ``affine-vjp`` node and the analytic
adjoint, σ recomputed per tile); anything else stays on the torch paths, which remain the reference.

The kernels release the GIL and run on Python threads (`kirchhoffnet.runtime.set_kernel_threads`), never on numba's
OpenMP or TBB pools, which shared torch's libgomp and fought its threads for the same cores.
The work is cut into the same ranges at any thread count (the same bits at 1 and N threads), and the calling
thread re-runs a range that a descheduled helper holds for too long (`_Race`).
numba is imported on first use only, so small circuits and training never pay its import.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar, cast

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.circuit._affine import trace_weights
from kirchhoffnet.circuit._numba_load import load_kernels
from kirchhoffnet.circuit._snapshot import Snapshot
from kirchhoffnet.devices import AffineActivation, Device
from kirchhoffnet.runtime import MAX_THREADS, kernel_threads

if TYPE_CHECKING:
    from kirchhoffnet.circuit._chunk import Chunk

_Item = TypeVar("_Item")
_Out = TypeVar("_Out")
Coefficients = Callable[[AffineActivation, Tensor], tuple[Tensor, Tensor | None]]
"""The kernel's (E, 3) ``(a, b, c)`` and ``post`` of a family's parameters (absent ones filled in)."""

# A tile's voltages and sums, (N + 1) × tile each, are meant to fit this many bytes (a core's L2 here is
# 512 KiB, L3 32 MiB). Wider tiles won on the MNIST circuit (835 nodes, float32, batch 250, 1 thread, CPU
# time, min of 10): 64 columns 11.3 ms per RHS, 128 9.7 ms, 256 8.5 ms: each group's loop set-up and its
# ragged end are paid once per tile, and the rows a group touches stay in cache anyway. The vector-Jacobian
# product likewise (batch 256, CPU time, min of 6): 128 columns 70 ms, 256 49 ms.
_TILE_BYTES = 1 << 22
_MAX_TILE = 256
_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "mos_relu": 4}  # as in _numba_kcl
# numba calls libm's tanh one element at a time (no vector math library by default): on the MNIST
# circuit the fused tanh took 0.7–1.4× the time of the ``affine`` path, so ``auto`` leaves tanh there.
_AUTO = {"identity", "relu", "leaky_relu", "mos_relu"}
# A launch cuts the field's groups and the product's edges into this many ranges, each summed into a block of its
# own, at any thread count (so the sums are added in one order): enough for 2 threads to share out and for the
# caller to re-run a straggler's range (`_Race`) at a quarter of the work. On the MNIST circuit (1 thread, CPU
# time, median and min of 15, load 2.9) 4 ranges cost 2–6 % over 1, 8 ranges 4–7 %.
_PARTS = 4
_PART_MIN = 1024


MIN_EDGES = 1000
"""From this many edges on, ``auto`` takes the fused kernel: 1.4–8× faster than ``affine`` from 100 edges
(relu, batch 32–250, 1 thread), but below this the gain is less than importing numba once."""


@functools.cache
def numba_kernel() -> ModuleType | None:
    """The compiled-kernel module, or ``None`` when numba cannot be imported."""
    return load_kernels("_numba_kcl")


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


class KernelRows(NamedTuple):
    """One parameter version's coefficients in the kernels' two layouts."""

    edges: np.ndarray  # (E, 5) ``(a, b, c, post, q)`` per edge in destination order: the product's
    pairs: np.ndarray  # (G, 10) two edges' ``(α, β, c, w, t)`` per group of a node pair: the field's


class FusedKcl:
    """One slice's topology laid out for the kernels, and its coefficients per parameter version.

    The vector-Jacobian product visits the edges sorted by destination. The field visits them in groups
    of two edges that join the same two nodes p ≥ q (a pair with an odd count gets a zero-weight partner):
    the original MNIST circuit joins its 56,570 node pairs by 2 to 24 edges, all even, so its 230,068
    edges make 115,034 groups and no padding.

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
        self._cache: tuple[tuple[object, ...], Snapshot, KernelRows] | None = None
        self.pairs, self._slot_edge, self._slot_sign = _pair_groups(self.src, self.dst, len(inv_c))

    def rows(self, abc: Tensor, post: Tensor | None) -> KernelRows:
        """Both kernels' rows for coefficient rows ``abc`` (E, 3) and ``post`` (E,) or ``None`` (unit)."""
        with torch.no_grad():
            q = trace_weights(self.whole, abc, post)
            post = torch.ones_like(q) if post is None else post
            edges = torch.cat([abc, post[:, None], q[:, None]], dim=1)[self.order].to(self.dtype).contiguous().numpy()
        # Seen from p, the edge's argument is α v_p + β v_q + c and w its current into p: an edge into p
        # keeps (b, a) and +post, an edge out of p takes (a, b) and −post; padding slots weigh 0.
        slot = edges[self._slot_edge]
        into = self._slot_sign > 0
        pairs = np.empty_like(slot)
        pairs[:, 0] = np.where(into, slot[:, 1], slot[:, 0])
        pairs[:, 1] = np.where(into, slot[:, 0], slot[:, 1])
        pairs[:, 2] = slot[:, 2]
        pairs[:, 3] = slot[:, 3] * self._slot_sign
        pairs[:, 4] = slot[:, 4]
        pairs[self._slot_sign == 0] = 0
        return KernelRows(edges, pairs.reshape(-1, 10))

    def coefficients(self, device: AffineActivation, params: Tensor, unchanged: bool = False) -> KernelRows:
        """`rows` of a family's parameters, kept while they hold the same values (a `Snapshot`: ``p.data``
        edits bypass torch's change markers); ``unchanged`` skips the comparison where the caller vouches
        for the values (a solve's later evaluations: on the MNIST circuit 38 comparisons took 7 % of an
        inference on the busy machine)."""
        key = (params.dtype, device)
        cache = self._cache
        if cache is None or cache[0] != key or not (unchanged or cache[1].matches(params)):
            with torch.no_grad():
                rows = self.rows(*self._coefficients(device, params.to(self.dtype)))
            self._cache = cache = (key, Snapshot(params), rows)
        return cache[2]

    def evaluate(
        self, device: AffineActivation, params: Tensor, state: Tensor, divergence: bool, unchanged: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """dV/dt (N, B) and, if asked, the divergence (B,) for node-major ``state`` (N, B), no autograd
        (``unchanged``: see `coefficients`)."""
        return self.field(device, self.coefficients(device, params, unchanged), state, divergence)

    def field(
        self, device: AffineActivation, rows: KernelRows, state: Tensor, divergence: bool
    ) -> tuple[Tensor, Tensor | None]:
        """`evaluate` for kernel rows (see `rows`). The groups are split into `_parts` ranges of p whatever
        the thread count, each range summed into a block of its own and the blocks added in a fixed order at
        the end: the same bits at any thread count and in every run. The batch is not cut into narrower
        tiles, whose every group would pay its loop set-up again."""
        batch = state.shape[1]
        launch = _Launch(device, state, self.inv_c.dtype)
        # Ground's 0 V first. NumPy copies, not torch: on 2 torch threads a copy this size opens an OpenMP
        # region, which waited for a core whenever the machine was busy.
        values = _array(state)
        tiles = []
        for lo, hi in launch.tiles(batch):
            tile = np.zeros((len(values) + 1, hi - lo), dtype=values.dtype)
            tile[1:] = values[:, lo:hi]
            tiles.append(tile)
        bounds = _parts(len(self.pairs))

        def work(item: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
            k, t = item
            volts = tiles[t]
            sums, trace = np.zeros_like(volts), np.zeros(volts.shape[1] if divergence else 0, volts.dtype)
            launch.kernel.pair_field(
                volts, bounds[k], bounds[k + 1], self.pairs, rows.pairs, launch.code, launch.constants,
                divergence, sums, trace,
            )  # fmt: skip
            return sums, trace

        items = [(k, t) for t in range(len(tiles)) for k in range(len(bounds) - 1)]
        done = dict(zip(items, launch.run(items, work), strict=True))
        parts = range(len(bounds) - 1)
        total = np.concatenate([_ordered_sum([done[k, t][0] for k in parts]) for t in range(len(tiles))], axis=1)
        out = torch.from_numpy(total[1:] * self.inv_c[:, None])
        if not divergence:
            return out, None
        trace = np.concatenate([_ordered_sum([done[k, t][1] for k in parts]) for t in range(len(tiles))])
        return out, torch.from_numpy(trace)

    def vjp(
        self, device: AffineActivation, rows: KernelRows, state: Tensor, grad_out: Tensor, need_post: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The closed-form vector-Jacobian product of `field` (no divergence) for the cotangent
        ``grad_out`` (N, B): ``(g_state (N, B), g_coeffs (E, 3), g_post (E,))`` in the kernel's edge
        order (``g_post`` is zero unless ``need_post``). One pass per batch tile and range of edges (`_parts`
        of them whatever the thread count), each into blocks of its own added in a fixed order: the same bits
        at any thread count. Cutting the batch into a tile per thread instead made every tile pay the whole
        edge loop's set-up again: 1.6× the time at 2 threads at batch 16 (benchmarks/threads.py)."""
        num_state, batch = state.shape
        launch = _Launch(device, state, self.inv_c.dtype)
        tiles = launch.tiles(batch)
        bounds = _parts(len(self.src))
        values, cotangent = _array(state), _array(grad_out)

        def work(item: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
            k, t = item
            (lo, hi), first, stop = tiles[t], bounds[k], bounds[k + 1]
            back = np.zeros((num_state + 1, hi - lo), dtype=values.dtype)
            partial = np.empty((stop - first, 4), dtype=values.dtype)
            launch.kernel.vjp_tile(
                values, cotangent, lo, hi, first, stop, self.src, self.dst, rows.edges, self.inv_c, launch.code,
                launch.constants, need_post, back, partial,
            )  # fmt: skip
            return back, partial

        items = [(k, t) for t in range(len(tiles)) for k in range(len(bounds) - 1)]
        done = dict(zip(items, launch.run(items, work), strict=True))
        parts = range(len(bounds) - 1)
        grad_state = np.concatenate([_ordered_sum([done[k, t][0] for k in parts])[1:] for t in range(len(tiles))], 1)
        partial = np.concatenate([_ordered_sum([done[k, t][1] for t in range(len(tiles))]) for k in parts])
        grads = torch.empty(len(self.src), 4, dtype=state.dtype)
        grads[self.order] = torch.from_numpy(partial)
        return torch.from_numpy(grad_state), grads[:, :3], grads[:, 3]


def _parts(count: int) -> np.ndarray:
    """Bounds of the ranges that a launch cuts ``count`` groups or edges into: `_PARTS`, fewer on small circuits
    (at least `_PART_MIN` each), never a function of the thread count, so that the sums are added in one order."""
    parts = max(1, min(_PARTS, count // _PART_MIN))
    return np.linspace(0, count, parts + 1).astype(np.int64)


def _ordered_sum(blocks: list[np.ndarray]) -> np.ndarray:
    """``blocks[0] + blocks[1] + …`` in this order, into the first block (each block is a launch's own)."""
    total = blocks[0]
    for block in blocks[1:]:
        total += block
    return total


def _pair_groups(src: np.ndarray, dst: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The field's groups of edges (see `FusedKcl`): ``pairs`` (G, 2) int32 nodes (p, q) sorted by p, and per
    slot (2G,) the edge it holds (an index into ``src``, ``dst``) and its sign: +1 into p, −1 out of p, 0 padding."""
    p, q = np.maximum(src, dst).astype(np.int64), np.minimum(src, dst).astype(np.int64)
    order = np.lexsort((q, p))
    key = p[order] * num_nodes + q[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, len(key)])
    padded = counts + counts % 2
    first_slot = np.r_[0, np.cumsum(padded)[:-1]]
    slot = np.repeat(first_slot, counts) + np.arange(len(key)) - np.repeat(starts, counts)
    slot_edge = np.zeros(int(padded.sum()), dtype=np.int64)
    slot_edge[slot] = order
    slot_sign = np.zeros(len(slot_edge), dtype=np.int8)
    slot_sign[slot] = np.where(dst[order] == p[order], 1, -1)
    heads = order[starts]
    pairs = np.repeat(np.stack([p[heads], q[heads]], axis=1), padded // 2, axis=0).astype(np.int32)
    return pairs, slot_edge, slot_sign


def _array(values: Tensor) -> np.ndarray:
    """A tensor's values as the contiguous NumPy array numba reads (no copy where already so)."""
    return values.detach().contiguous().numpy()


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The helper threads (created on demand), shared by every kernel launch of the process."""
    return ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="kirchhoffnet-kernel")


class _Launch:
    """One kernel launch: the compiled module, the family's code and constants, its threads, and the widest
    batch tile that keeps two (N + 1)-row blocks within `_TILE_BYTES`."""

    def __init__(self, device: AffineActivation, state: Tensor, dtype: np.dtype) -> None:
        kernel, code = numba_kernel(), activation_code(device)
        assert kernel is not None and code is not None  # the caller checked refusal()
        self.kernel, self.code = kernel, code
        self.threads = kernel_threads()
        fits = _TILE_BYTES // (2 * (state.shape[0] + 1) * state.element_size())
        self.width = max(8, min(_MAX_TILE, fits // 8 * 8))
        alpha = float(getattr(device, "negative_slope", 0.0))
        self.constants = np.array([0.0, 0.5, 1.0, alpha], dtype=dtype)

    def tiles(self, batch: int) -> list[tuple[int, int]]:
        """Column ranges ``(lo, hi)`` of at most the launch's width covering the batch."""
        return [(lo, min(lo + self.width, batch)) for lo in range(0, batch, self.width)]

    def run(self, items: list[_Item], work: Callable[[_Item], _Out]) -> list[_Out]:
        """``[work(item) for item in items]`` on the calling thread and up to ``threads − 1`` helpers (see
        `_Race`). ``work`` must write only arrays of its own making, which it returns: an item may run twice."""
        helpers = min(self.threads, len(items)) - 1
        if helpers == 0:
            return [work(item) for item in items]
        race = _Race(items, work)
        for _ in range(helpers):
            _pool().submit(race.drain)
        return race.finish()


_GRACE = 1.5
"""How many times the caller's own time per item a helper may hold one before the caller runs it too."""


class _Race(Generic[_Item, _Out]):
    """One launch's items shared between the calling thread and its helpers, first finisher wins.

    Each thread takes the next unclaimed item until none is left. A helper that the OS deschedules in the
    middle of an item would then hold the caller, and the launch, until it runs again: at load 6.6 on the
    2-core VM a second thread cost up to 1.37× in median on the MNIST right-hand side. So the caller, once
    no item is unclaimed, runs any item that a helper has held for longer than `_GRACE` times the caller's
    own time per item, into its own arrays; whichever run finishes first gives the result, and both give
    the same bits (the same kernel on the same inputs). A late helper's result is dropped. A helper's error
    reaches the caller.
    """

    def __init__(self, items: list[_Item], work: Callable[[_Item], _Out]) -> None:
        self.items, self.work = items, work
        self.results: list[_Out | None] = [None] * len(items)
        self.done = [False] * len(items)
        self.claimed = [math.inf] * len(items)  # perf_counter() when a thread took each item
        self.left = len(items)
        self.next = 0
        self.error: BaseException | None = None
        self.lock = threading.Condition()

    def claim(self) -> int | None:
        """The next unclaimed item, stamped with the time, or ``None`` when every item is claimed."""
        with self.lock:
            if self.next == len(self.items):
                return None
            index, self.next = self.next, self.next + 1
            self.claimed[index] = time.perf_counter()
            return index

    def execute(self, index: int) -> None:
        """Run one item and keep its result unless another run of it finished first."""
        result = self.work(self.items[index])
        with self.lock:
            if not self.done[index]:
                self.results[index], self.done[index] = result, True
                self.left -= 1
                self.lock.notify_all()

    def drain(self) -> None:
        """A helper's loop: items until none is unclaimed (its errors go to the caller)."""
        try:
            while (index := self.claim()) is not None:
                self.execute(index)
        except BaseException as error:  # re-raised on the calling thread
            with self.lock:
                self.error = error
                self.lock.notify_all()

    def finish(self) -> list[_Out]:
        """The caller's part: its share of the items, then any item a helper holds past its grace, or a wait."""
        own, spent = 0, 0.0
        while (index := self.claim()) is not None:
            start = time.perf_counter()
            self.execute(index)
            own, spent = own + 1, spent + time.perf_counter() - start
        grace = _GRACE * spent / max(own, 1)
        with self.lock:
            while self.left:
                if self.error is not None:
                    raise self.error
                index = min((i for i, done in enumerate(self.done) if not done), key=self.claimed.__getitem__)
                wait = self.claimed[index] + grace - time.perf_counter()
                if wait > 0:
                    self.lock.wait(wait)
                    continue
                self.lock.release()  # the caller's run of the item: done once it returns
                try:
                    self.execute(index)
                finally:
                    self.lock.acquire()
        return cast(list[_Out], self.results)

"""One time slice of a KirchhoffNet: a topology, a device family and one parameter column per edge."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet.circuit._kcl import KclKernel
from kirchhoffnet.circuit._snapshot import Snapshot
from kirchhoffnet.circuit.power import Power
from kirchhoffnet.devices import Device, resolve
from kirchhoffnet.errors import CheckpointError, ConfigError, DeviceError, KirchhoffError, unknown_choice
from kirchhoffnet.topology import validate

INITIALIZERS: dict[str, Callable[[Tensor], Any]] = {
    # kaiming_normal_ on the (P, E) matrix has fan_in = E, as in the original code.
    "kaiming": nn.init.kaiming_normal_,
    "xavier": nn.init.xavier_normal_,
    "uniform": nn.init.uniform_,
    "zeros": nn.init.zeros_,
    "ones": nn.init.ones_,
    "gauss": lambda t: nn.init.normal_(t, mean=0.0, std=0.01),
}


def _dtype(params: Tensor | None, capacitance: Any) -> torch.dtype:
    """The dtype of the floating-point tensors given, else torch's default; two that differ are refused,
    since converting either one would silently round it or silently widen the other."""
    given = [t for t in (params, capacitance) if isinstance(t, Tensor) and t.is_floating_point()]
    if len({t.dtype for t in given}) > 1:
        raise ConfigError(
            f"params are {given[0].dtype} but capacitance is {given[1].dtype}; give both in one dtype "
            "(a slice keeps the dtype of the tensors it is given)"
        )
    return given[0].dtype if given else torch.get_default_dtype()


def _capacitance(value: float | Tensor | Any, num_state: int, dtype: torch.dtype) -> Tensor:
    cap = torch.as_tensor(value, dtype=dtype).detach().clone()
    if cap.dim() == 0:
        cap = cap.expand(num_state).clone()
    _check_capacitance(cap, num_state, ConfigError)
    return cap


class Slice(nn.Module):
    """A circuit over one time interval: C dv/dt = (currents in) − (currents out).

    Args:
        edge_index: (2, E) node indices, row 0 source, row 1 destination; node 0 is ground.
        device: device family, by name (``"ShiftTanh2"``), spec dict or instance.
        num_nodes: nodes including ground; default the largest index + 1.
        capacitance: node capacitance to ground, scalar or one per state node (normalised units).
        init: parameter initialiser: ``kaiming``, ``xavier``, ``uniform``, ``zeros``, ``ones``, ``gauss``.
        init_inside_clamps: a family that clamps its parameters maps the draw inside its clamps
            (`Device.initial`); False keeps the raw draw, as runs before that mapping were trained.
        params: initial (P, E) parameters instead of ``init``.

    Dtype:
        ``params`` and ``capacitance`` keep the floating-point dtype of the tensors given (both given
        must agree); otherwise torch's default dtype. ``module.to(dtype)`` converts them as usual. A
        solve computes in the dtype of its input voltages, converting parameters held in another dtype
        at each evaluation: float64 parameters with float32 inputs compute in float32.

    Shapes:
        Public methods are batch-first: voltages (B, N) with N = num_nodes - 1 (ground excluded).
        The solver uses the node-major [`field`][kirchhoffnet.circuit.Slice.field] on (N, B).
    """

    edge_index: Tensor
    capacitance: Tensor

    def __init__(
        self,
        edge_index: Any,
        device: str | Device | dict[str, Any] = "ShiftTanh2",
        *,
        num_nodes: int | None = None,
        capacitance: float | Tensor = 1.0,
        init: str = "kaiming",
        params: Tensor | None = None,
        init_inside_clamps: bool = True,
    ) -> None:
        super().__init__()
        edges, self.num_nodes = validate(edge_index, num_nodes)
        self.device_family = resolve(device)
        self.register_buffer("edge_index", edges.clone())  # own it: slices may share one topology
        dtype = _dtype(params, capacitance)
        self.register_buffer("capacitance", _capacitance(capacitance, self.num_nodes - 1, dtype))
        shape = (self.device_family.num_params, edges.shape[1])
        if params is None:
            if init not in INITIALIZERS:
                raise ConfigError(unknown_choice("initialiser", init, INITIALIZERS))
            params = torch.empty(shape, dtype=dtype)
            INITIALIZERS[init](params)
            if init_inside_clamps:
                params = self.device_family.initial(params)
        else:
            _check_params(params, shape, self.device_family.name, DeviceError)
        self.params = nn.Parameter(params.detach().clone())
        self._kernels: dict[tuple[Any, ...], KclKernel] = {}
        self._built_for: Snapshot | None = None  # the capacitance the kernels were built with

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """Every road that puts state into a slice (``kn.load``, a run's model, a resumed checkpoint, a
        score circuit) passes here: the incoming tensors are checked before any is copied in, so that a
        hostile file can neither reach the KCL kernel (whose sparse operators trust their indices) nor
        leave the slice half loaded."""
        self.check_state({name[len(prefix) :]: t for name, t in state_dict.items() if name.startswith(prefix)}, prefix)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        self._kernels = {}  # built from the old topology and capacitance

    def check_state(self, state: dict[str, Any], prefix: str = "") -> None:
        """`check_slice_state` against this slice's family, node and edge counts."""
        check_slice_state(state, self.device_family, self.num_nodes, self.num_edges, prefix)

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the kernel cache behind: its keys name this slice's storage, and
        CSR tensors (large circuits) cannot be deep-copied."""
        state = self.__dict__.copy()
        state["_kernels"] = {}
        return state

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def num_state(self) -> int:
        """State nodes: every node but ground."""
        return self.num_nodes - 1

    def kernel(self, dtype: torch.dtype, device: torch.device) -> KclKernel:
        """The KCL kernel for this dtype and device, rebuilt when the capacitance changes in any way
        (its values are compared: see `Snapshot`)."""
        cap = self.capacitance
        if self._built_for is None or not self._built_for.matches(cap):
            self._kernels, self._built_for = {}, Snapshot(cap)
        key = (dtype, device)
        kernel = self._kernels.get(key)
        if kernel is None:
            kernel = self._kernels[key] = KclKernel(self.edge_index, cap, dtype, device)
        return kernel

    def field(self, state: Tensor, kernel: str = "auto") -> Tensor:
        """Node-major dV/dt (N, B) for the node-major state (N, B), on the path ``kernel`` asks for
        (one of `KERNELS`); see [`KclKernel`][kirchhoffnet.circuit.KclKernel]."""
        evaluator = self.kernel(state.dtype, state.device)
        return evaluator.evaluate(self.device_family, self.params.to(state.dtype), state, False, kernel)[0]

    def field_and_divergence(self, state: Tensor, kernel: str = "auto") -> tuple[Tensor, Tensor]:
        """Node-major dV/dt (N, B) and the exact divergence tr(∂f/∂v) (B,)."""
        evaluator = self.kernel(state.dtype, state.device)
        out, trace = evaluator.evaluate(self.device_family, self.params.to(state.dtype), state, True, kernel)
        return out, trace  # type: ignore[return-value]  # evaluate returns the trace when asked

    def forward(self, t: Tensor | float, v: Tensor) -> Tensor:
        """dv/dt (B, N): the slice as a torchdiffeq-style vector field ``f(t, v)``."""
        return self.field(v.T).T

    def divergence(self, t: Tensor | float, v: Tensor) -> Tensor:
        """Exact Jacobian trace tr(∂f/∂v) per sample, computed analytically in O(E).

        Shapes:
            v: (B, N). Returns (B,).
        """
        return self.field_and_divergence(v.T.contiguous())[1]

    def currents(self, v: Tensor) -> Tensor:
        """Edge currents (B, E), positive from source to destination, for voltages (B, N)."""
        padded = torch.cat([v.new_zeros(v.shape[0], 1), v], dim=1)
        src, dst = self.edge_index[0], self.edge_index[1]
        return self.device_family.current(padded[:, src], padded[:, dst], self.params.to(v.dtype)[:, None, :])

    def power(self, v: Tensor, params: Tensor | None = None) -> Power:
        """The power account of the slice's devices at voltages ``v`` (B, N): each device absorbs
        ``P_e = i_e·(v_src − v_dst)``; see [`Power`][kirchhoffnet.circuit.Power]. ``params``: the (P, E)
        parameters the devices are programmed with, when they are not the slice's own (default).

        Shapes:
            v: (B, N). Returns fields of shape (B,).
        """
        padded = torch.cat([v.new_zeros(v.shape[0], 1), v], dim=1)
        v_src, v_dst = padded[:, self.edge_index[0]], padded[:, self.edge_index[1]]
        chosen = self.params if params is None else params
        current = self.device_family.current(v_src, v_dst, chosen.to(v.dtype)[:, None, :])
        return Power.of_devices(current, v_src - v_dst)

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable structure (tensors excluded), for checkpoints."""
        return {"num_nodes": self.num_nodes, "device": self.device_family.spec()}

    def extra_repr(self) -> str:
        return f"{self.device_family}, num_nodes={self.num_nodes}, num_edges={self.num_edges}"


def check_slice_state(
    state: dict[str, Any], family: Device, num_nodes: int, num_edges: int | None = None, prefix: str = ""
) -> None:
    """Refuse tensors a slice cannot run: ``edge_index`` not an integer (2, E) topology of ``num_nodes``
    nodes (E = ``num_edges``, or any when ``None``), capacitances not finite and positive per state
    node, parameters not finite floats of shape (P, E). Tensors absent from ``state`` are not checked
    (``load_state_dict`` reports them). Raises [`CheckpointError`][kirchhoffnet.errors.CheckpointError] naming the
    tensor (``prefix`` + name)."""
    edges = state.get("edge_index")
    if num_edges is None and isinstance(edges, Tensor) and edges.dim() == 2:
        num_edges = int(edges.shape[1])
    checks: dict[str, Callable[[Any], None]] = {
        "edge_index": lambda t: _check_edges(t, num_nodes, num_edges),
        "capacitance": lambda t: _check_capacitance(t, num_nodes - 1),
        "params": lambda t: _check_params(t, (family.num_params, num_edges or 0), family.name, CheckpointError),
    }
    for name, check in checks.items():
        if name in state:
            try:
                check(state[name])
            except KirchhoffError as exc:
                raise CheckpointError(f"tensor {prefix}{name}: {exc}") from None


def _check_edges(edges: Any, num_nodes: int, num_edges: int | None) -> None:
    if not isinstance(edges, Tensor) or edges.is_floating_point() or edges.is_complex() or edges.dtype == torch.bool:
        raise CheckpointError(f"edge_index must be an integer tensor, got {_describe(edges)}")
    if edges.dim() != 2 or edges.shape[0] != 2 or (num_edges is not None and edges.shape[1] != num_edges):
        raise CheckpointError(f"edge_index must have shape (2, {num_edges or 'E'}), got {tuple(edges.shape)}")
    validate(edges, num_nodes)


def _check_capacitance(cap: Any, num_state: int, error: type[KirchhoffError] = CheckpointError) -> None:
    if not isinstance(cap, Tensor) or not cap.is_floating_point():
        raise error(f"capacitance must be a floating-point tensor, got {_describe(cap)}")
    if tuple(cap.shape) != (num_state,):
        raise error(f"capacitance must hold one value per state node ({num_state}), got shape {tuple(cap.shape)}")
    bad = ~torch.isfinite(cap) | (cap <= 0)
    if bool(bad.any()):
        where = int(bad.nonzero()[0])
        raise error(
            f"capacitance of node {where + 1} is {float(cap[where]):g}; capacitance must be finite and positive"
        )


def _check_params(params: Any, shape: tuple[int, int], family: str, error: type[KirchhoffError]) -> None:
    if not isinstance(params, Tensor) or not params.is_floating_point():
        raise error(f"{family} parameters must be a floating-point tensor, got {_describe(params)}")
    if tuple(params.shape) != shape:
        raise error(f"{family} on {shape[1]} edges needs parameters of shape {shape}, got {tuple(params.shape)}")
    bad = ~torch.isfinite(params)
    if bool(bad.any()):
        row, col = (int(x) for x in bad.nonzero()[0])
        raise error(f"{family} parameter [{row}, {col}] is {float(params[row, col])}; parameters must be finite")


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def as_time_grid(times: Any, num_slices: int) -> tuple[float, ...]:
    """Validate slice boundaries: ``num_slices + 1`` finite, strictly increasing times."""
    grid = tuple(float(t) for t in times)
    if len(grid) != num_slices + 1:
        raise ConfigError(f"times needs {num_slices + 1} boundaries for {num_slices} slices, got {len(grid)}: {grid}")
    if not all(math.isfinite(t) for t in grid):
        raise ConfigError(f"times must be finite, got {grid}")
    for k in range(num_slices):
        if grid[k + 1] <= grid[k]:
            raise ConfigError(
                f"times must increase strictly: slice {k} runs from {grid[k]} to {grid[k + 1]} (times[{k + 1}])"
            )
    return grid

"""A KirchhoffNet: a sequence of time slices, each its own circuit, integrated one after another."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet._schema import count, entry, expect
from kirchhoffnet.circuit.encoding import Encoding
from kirchhoffnet.circuit.slice import Slice, as_time_grid, check_slice_state
from kirchhoffnet.devices import Device, resolve
from kirchhoffnet.errors import CheckpointError, ConfigError, KirchhoffError, TopologyError, unknown_choice

FILLS = ("zeros", "repeat")


class Circuit(nn.Module):
    """A KirchhoffNet circuit: depth comes from time slices.

    Slice k runs over ``[times[k], times[k+1]]`` with its own topology, devices and parameters.
    The voltages at the end of one slice are the initial voltages of the next; when the node
    count changes, extra nodes are filled (``fill="zeros"`` or ``"repeat"``) and surplus nodes
    are dropped.

    Args:
        topology: one ``edge_index`` (2, E), a list with one per slice, or a list of
            [`Slice`][kirchhoffnet.circuit.Slice] objects.
        device: device family (name, spec dict or instance) for slices built here.
        slices: number of slices when ``topology`` is a single ``edge_index`` (default 1).
        times: slice boundaries, ``len(slices) + 1`` strictly increasing values; default 0, 1, 2, ...
        num_nodes: nodes including ground for slices built here; default from the edges.
        capacitance: node capacitance for slices built here (normalised units; default 1).
        fill: how to initialise nodes a slice has beyond its input: ``zeros`` or ``repeat``.
        residual: ``(i, j)`` adds slice i's output to slice j's output (i < j).
        init: parameter initialiser for slices built here.
        input_nodes: node numbers (1-based, ground excluded) that receive the input features;
            default the first ones.
        encoding: the [`Encoding`][kirchhoffnet.circuit.Encoding] ``v = offset + scale·x`` of inputs and outputs
            in node voltages (default the identity), e.g. to keep a flow's nodes within a supply's rails.

    A circuit is structure and parameters; integrating it needs a solver, which sits above it
    (``kirchhoffnet.solve``). The module that maps input voltages to output voltages is
    ``kn.Network(circuit)``: ``v_out = kn.Network(circuit)(v_in)``, with ``kn.simulate``'s defaults.

    Example:
        ```python
        edges = kirchhoffnet.topology.fully_connect(num_nodes=3, repeat=(25, 25))
        net = Circuit(edges, device="ShiftTanh2", slices=2, times=(0.0, 0.5, 1.0))
        v_out = kirchhoffnet.Network(net)(torch.randn(8, 2))
        ```
    """

    def __init__(
        self,
        topology: Any,
        device: str | Device | dict[str, Any] = "ShiftTanh2",
        *,
        slices: int | None = None,
        times: Sequence[float] | None = None,
        num_nodes: int | None = None,
        capacitance: float | Tensor = 1.0,
        fill: str = "zeros",
        residual: Sequence[int] | None = None,
        init: str = "kaiming",
        input_nodes: Sequence[int] | None = None,
        encoding: Encoding | None = None,
    ) -> None:
        super().__init__()
        built = _build_slices(topology, device, slices, num_nodes, capacitance, init)
        self.slices = nn.ModuleList(built)
        self.times = as_time_grid(times if times is not None else range(len(built) + 1), len(built))
        if fill not in FILLS:
            raise ConfigError(unknown_choice("fill", fill, FILLS))
        self.fill = fill
        self.residual = _check_residual(residual, built)
        self.input_nodes = _check_input_nodes(input_nodes, built[0].num_state)
        self.encoding = encoding or Encoding()

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """Refused with the two ways to run a circuit: the solver lives above the circuit, so that a
        circuit never depends on how it is integrated."""
        raise ConfigError(
            "a kn.Circuit has no solver; run it as kn.Network(circuit)(v_in), a module with kn.simulate's "
            "defaults (dopri5 at 1e-4, backprop), or kn.simulate(circuit, v_in, solver=...)"
        )

    @property
    def num_slices(self) -> int:
        return len(self.slices)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def widths(self) -> tuple[int, ...]:
        """State nodes (ground excluded) of each slice."""
        return tuple(self.slice(k).num_state for k in range(self.num_slices))

    def slice(self, k: int) -> Slice:
        return self.slices[k]  # type: ignore[return-value]

    def input_state(self, x: Tensor) -> Tensor:
        """Node-major initial state (N0, B) in volts holding the input features ``x`` (B, d), encoded; nodes beyond
        the inputs start per ``fill``."""
        if x.dim() != 2:
            raise ConfigError(f"inputs must be a (batch, features) matrix, got shape {tuple(x.shape)}")
        x = self.encoding.encode(x)
        width = self.slice(0).num_state
        if self.input_nodes is not None:
            if x.shape[1] != len(self.input_nodes):
                raise ConfigError(
                    f"inputs have {x.shape[1]} features but the circuit has {len(self.input_nodes)} input nodes"
                )
            state = x.new_zeros(width, x.shape[0])
            state[torch.as_tensor(self.input_nodes, device=x.device) - 1] = x.T
            return state
        if x.shape[1] > width:
            raise ConfigError(
                f"inputs have {x.shape[1]} features but the first slice has only {width} state nodes; "
                "use a larger topology"
            )
        return self.resize(x.T.contiguous(), width)

    def resize(self, state: Tensor, width: int) -> Tensor:
        """Fit a node-major state (N, B) to ``width`` nodes: fill extra nodes, drop surplus ones."""
        have = state.shape[0]
        if have >= width:
            return state[:width]
        if self.fill == "zeros":
            return torch.cat([state, state.new_zeros(width - have, state.shape[1])])
        return state.repeat(math.ceil(width / have), 1)[:width]

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable structure; tensors live in the state dict. The encoding is written only when it is
        not the identity, so that specs (and checkpoints) of unencoded circuits stay as they were."""
        spec: dict[str, Any] = {
            "slices": [s.spec() for s in self.slices],  # type: ignore[operator]
            "times": list(self.times),
            "fill": self.fill,
            "residual": list(self.residual) if self.residual else None,
            "input_nodes": list(self.input_nodes) if self.input_nodes else None,
        }
        if not self.encoding.identity:
            spec["encoding"] = self.encoding.spec()
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any], state: dict[str, Tensor], prefix: str = "") -> Circuit:
        """Rebuild a circuit from [`spec`][kirchhoffnet.circuit.Circuit.spec] and its ``state_dict``; a spec of the
        wrong structure or state a slice cannot run raises [`CheckpointError`][kirchhoffnet.errors.CheckpointError]
        naming the key or tensor (tensors as ``prefix`` + their name: ``circuit.`` inside a flow's or network's
        state)."""
        where = "circuit spec"
        slice_specs = entry(spec, "slices", list, where)
        if not slice_specs:
            raise CheckpointError(f"{where}.slices is empty; a circuit has at least one slice")
        slices = [_slice_from_spec(k, s, state, prefix) for k, s in enumerate(slice_specs)]
        times = entry(spec, "times", list, where)
        for k, t in enumerate(times):
            expect(t, float, f"{where}.times[{k}]")
        residual = entry(spec, "residual", (list, type(None)), where)
        input_nodes = entry(spec, "input_nodes", (list, type(None)), where)
        for name, nodes in (("residual", residual), ("input_nodes", input_nodes)):
            for k, n in enumerate(nodes or ()):
                expect(n, int, f"{where}.{name}[{k}]")
        try:
            encoding = Encoding.from_spec(spec.get("encoding"))
        except KirchhoffError as exc:
            raise CheckpointError(f"{where}.encoding: {exc}") from None
        try:
            return cls(
                slices,
                times=times,
                fill=entry(spec, "fill", str, where),
                residual=residual,
                input_nodes=input_nodes,
                encoding=encoding,
            )
        except CheckpointError:
            raise
        except KirchhoffError as exc:
            raise CheckpointError(f"{where}: {exc}") from None

    def extra_repr(self) -> str:
        encoded = "" if self.encoding.identity else f", encoding={self.encoding}"
        return f"times={self.times}, fill={self.fill!r}, residual={self.residual}{encoded}"


def _slice_from_spec(k: int, spec: Any, state: dict[str, Tensor], prefix: str = "") -> Slice:
    """Slice ``k`` of [`Circuit.from_spec`][kirchhoffnet.circuit.Circuit.from_spec], its spec and tensors checked before
    they are used."""
    where = f"circuit spec.slices[{k}]"
    num_nodes = count(entry(spec, "num_nodes", int, where), f"{where}.num_nodes", low=2)
    try:
        family = resolve(entry(spec, "device", (str, dict), where))
    except KirchhoffError as exc:
        raise CheckpointError(f"{where}.device: {exc}") from None
    tensors = {}
    for name in ("edge_index", "capacitance", "params"):
        key = f"slices.{k}.{name}"
        if key not in state:
            raise CheckpointError(f"the state lacks tensor {prefix}{key} of slice {k}")
        tensors[name] = state[key]
    check_slice_state(tensors, family, num_nodes, prefix=f"{prefix}slices.{k}.")
    return Slice(
        tensors["edge_index"],
        family,
        num_nodes=num_nodes,
        capacitance=tensors["capacitance"],
        params=tensors["params"],
    )


def _build_slices(
    topology: Any,
    device: str | Device | dict[str, Any],
    slices: int | None,
    num_nodes: int | None,
    capacitance: float | Tensor,
    init: str,
) -> list[Slice]:
    if isinstance(topology, Slice):
        topology = [topology]
    if isinstance(topology, (list, tuple)) and topology and all(isinstance(s, Slice) for s in topology):
        if slices is not None and slices != len(topology):
            raise ConfigError(f"slices={slices} but {len(topology)} Slice objects were given")
        return list(topology)
    if isinstance(topology, (list, tuple)) and topology and not _is_single_edge_list(topology):
        if slices is not None and slices != len(topology):
            raise ConfigError(f"slices={slices} but {len(topology)} topologies were given")
        edge_sets = list(topology)
    else:
        count = 1 if slices is None else int(slices)
        if count < 1:
            raise ConfigError(f"slices must be at least 1, got {slices}")
        edge_sets = [topology] * count
    if not edge_sets:
        raise TopologyError("the circuit has no slices; give at least one edge_index")
    return [Slice(edges, device, num_nodes=num_nodes, capacitance=capacitance, init=init) for edges in edge_sets]


def _is_single_edge_list(topology: Sequence[Any]) -> bool:
    """A nested list ``[[src...], [dst...]]`` is one edge_index, not two topologies."""
    return len(topology) == 2 and all(
        isinstance(row, (list, tuple)) and all(isinstance(n, int) for n in row) for row in topology
    )


def _check_residual(residual: Sequence[int] | None, slices: list[Slice]) -> tuple[int, int] | None:
    if residual is None:
        return None
    pair = tuple(int(r) for r in residual)
    if len(pair) != 2 or not 0 <= pair[0] < pair[1] < len(slices):
        raise ConfigError(f"residual must be (i, j) with 0 <= i < j < {len(slices)} slices, got {tuple(residual)}")
    if slices[pair[0]].num_state != slices[pair[1]].num_state:
        raise ConfigError(
            f"residual {pair}: slice {pair[0]} has {slices[pair[0]].num_state} state nodes but "
            f"slice {pair[1]} has {slices[pair[1]].num_state}"
        )
    return pair[0], pair[1]


def _check_input_nodes(nodes: Sequence[int] | None, width: int) -> tuple[int, ...] | None:
    if nodes is None:
        return None
    chosen = tuple(int(n) for n in nodes)
    for n in chosen:
        if n == 0:
            raise TopologyError("input node 0 is ground; ground is fixed at 0 V and cannot hold an input")
        if not 1 <= n <= width:
            raise TopologyError(f"input node {n} is outside the first slice's state nodes 1..{width}")
    if len(set(chosen)) != len(chosen):
        raise TopologyError(f"input nodes repeat: {chosen}")
    return chosen

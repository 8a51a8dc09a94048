"""Config sections that describe the model: topologies, the circuit, the solver.

Each topology section maps one-to-one onto a generator of [`kirchhoffnet.topology`][kirchhoffnet.topology]; the
circuit section builds a [`Circuit`][kirchhoffnet.Circuit] from them.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor

from kirchhoffnet import topology as topo
from kirchhoffnet._finite import SEED_MAX
from kirchhoffnet.circuit import Circuit, Encoding, Slice
from kirchhoffnet.circuit._kcl import KERNELS
from kirchhoffnet.circuit.slice import INITIALIZERS
from kirchhoffnet.devices import Device, TransistorTable, resolve
from kirchhoffnet.errors import ConfigError, KirchhoffError
from kirchhoffnet.models.readout import resolve_readout
from kirchhoffnet.solve import (
    ADAPTIVE_METHODS,
    DEFAULT_GRADIENT,
    FIXED_METHODS,
    GradientMethod,
    Solver,
    gradient_method,
)
from kirchhoffnet.solve.solver import INTEGRATORS, MAX_ADAPTIVE_STEPS


class Section(BaseModel):
    """A config section: unknown keys are errors, never silently ignored; NaN and inf are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def one_of(options: Collection[str]) -> AfterValidator:
    """A field check that the value names one of ``options``; the message lists them."""

    def check(value: str) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}")
        return value

    return AfterValidator(check)


Repeat = tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]


class FullyConnect(Section):
    """Every ordered node pair, parallel devices both ways (the 2-D flow topology)."""

    name: Literal["fully_connect"] = Field(description="Topology generator.")
    num_nodes: int = Field(ge=2, description="Nodes including ground (num_nodes - 1 state nodes).")
    repeat: Repeat = Field((1, 1), description="Parallel devices per pair: (forward, backward).")
    include_ground: bool = Field(True, description="Also connect every node to ground.")

    @property
    def total_nodes(self) -> int:
        return self.num_nodes

    def build(self) -> Tensor:
        return topo.fully_connect(self.num_nodes, self.repeat, self.include_ground)

    @property
    def edge_count(self) -> int:
        """Edges `build` makes, computed without building them (for the memory pre-flight)."""
        return topo.fully_connect_edges(self.num_nodes, self.repeat, self.include_ground)


class _Image(Section):
    channels: int = Field(ge=1, description="Image channels (1 grey, 3 colour).")
    height: int = Field(ge=1, description="Image height in pixels.")
    width: int = Field(ge=1, description="Image width in pixels.")
    kernel_size: int = Field(ge=1, description="Side of the local window whose pixels are connected.")
    padding: bool = Field(False, description="Pad so that border pixels see full windows.")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.channels, self.height, self.width


class NeighborConnect(_Image):
    """Pixels sharing a local window, connected both ways (a convolution-like graph)."""

    name: Literal["neighbor_connect"] = Field(description="Topology generator.")
    repeat: int = Field(1, ge=1, description="Parallel devices per pixel pair.")

    @property
    def total_nodes(self) -> int:
        return 1 + self.channels * self.height * self.width

    def build(self) -> Tensor:
        return topo.neighbor_connect(
            self.channels, self.height, self.width, self.kernel_size, padding=self.padding, repeat=self.repeat
        )

    @property
    def edge_count(self) -> int:
        return topo.neighbor_connect_edges(
            self.channels, self.height, self.width, self.kernel_size, self.padding, self.repeat
        )


class MixConnect(_Image):
    """The image topology of the KirchhoffNet classifiers: local windows plus hidden nodes."""

    name: Literal["mix_connect"] = Field(description="Topology generator.")
    hidden_nodes: int = Field(ge=0, description="Extra nodes connected to every pixel (logits are read off the last).")
    repeat: Repeat = Field((1, 0), description="Devices per pixel–ground and pixel–hidden pair: (in, out).")
    kernel_repeat: int = Field(1, ge=1, description="Parallel devices per pixel pair inside a window.")

    @property
    def total_nodes(self) -> int:
        return 1 + self.channels * self.height * self.width + self.hidden_nodes

    def build(self) -> Tensor:
        return topo.mix_connect(
            self.channels,
            self.height,
            self.width,
            self.kernel_size,
            self.hidden_nodes,
            repeat=self.repeat,
            padding=self.padding,
            kernel_repeat=self.kernel_repeat,
        )

    @property
    def edge_count(self) -> int:
        image = (self.channels, self.height, self.width, self.kernel_size)
        local = topo.neighbor_connect_edges(*image, self.padding, self.kernel_repeat)
        return topo.mix_connect_edges(self.channels * self.height * self.width, self.hidden_nodes, self.repeat, local)


class Chain(Section):
    """Consecutive nodes in a line (a ladder network)."""

    name: Literal["chain"] = Field(description="Topology generator.")
    num_nodes: int = Field(ge=2, description="Nodes including ground.")
    repeat: int = Field(1, ge=1, description="Parallel devices per link.")
    include_ground: bool = Field(True, description="Start the chain at ground.")

    @property
    def total_nodes(self) -> int:
        return self.num_nodes

    def build(self) -> Tensor:
        return topo.chain(self.num_nodes, self.repeat, self.include_ground)

    @property
    def edge_count(self) -> int:
        return topo.chain_edges(self.num_nodes, self.repeat, self.include_ground)


class RandomGraph(Section):
    """Random directed edges between distinct nodes."""

    name: Literal["random_graph"] = Field(description="Topology generator.")
    num_nodes: int = Field(ge=2, description="Nodes including ground.")
    num_edges: int = Field(ge=1, description="Number of devices.")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed of the edge draw.")

    @property
    def total_nodes(self) -> int:
        return self.num_nodes

    def build(self) -> Tensor:
        return topo.random_graph(self.num_nodes, self.num_edges, self.seed)

    @property
    def edge_count(self) -> int:
        return self.num_edges


def tabulation_settings(device: Any) -> dict[str, Any] | None:
    """The [`tabulate`][kirchhoffnet.spice.tabulate] settings of a ``{name: TransistorTable, card: ...}`` device
    spec, which names a model card instead of holding a table (and the family's ``clamp_gradient``); None for any
    other device."""
    if not (isinstance(device, dict) and str(device.get("name", "")).lower() == "transistortable"):
        return None
    if "card" not in device:
        return None
    from kirchhoffnet.spice.tabulation import tabulate  # ngspice's side, loaded only for such a spec

    settings = {k: v for k, v in device.items() if k != "name"}
    allowed = set(inspect.signature(tabulate).parameters) - {"cache"} | {"clamp_gradient"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ConfigError(f"device: TransistorTable with a card takes {sorted(allowed)}, not {unknown}")
    return settings


def device_template(device: Any) -> Device:
    """The device family a spec names, without tabulating: enough for its parameter count."""
    if tabulation_settings(device) is None:
        return resolve(device)
    return TransistorTable(clamp_gradient=device.get("clamp_gradient", "inward"))


def build_device(device: Any) -> Device:
    """The device family of a spec; a TransistorTable naming a card is tabulated in ngspice (or read from the cache)."""
    settings = tabulation_settings(device)
    if settings is None:
        return resolve(device)
    from kirchhoffnet.spice.tabulation import tabulate

    card, rule = settings.pop("card"), settings.pop("clamp_gradient", "inward")
    table = tabulate(card, **settings).device
    return table if rule == "inward" else TransistorTable(**{**table.hyperparameters(), "clamp_gradient": rule})


Topology = Annotated[FullyConnect | NeighborConnect | MixConnect | Chain | RandomGraph, Field(discriminator="name")]
TOPOLOGY_NAMES = ("fully_connect", "neighbor_connect", "mix_connect", "chain", "random_graph")


class EncodingConfig(Section):
    """Node voltages ``offset + scale · x`` of the model's data ``x`` (see [`Encoding`][kirchhoffnet.circuit.Encoding]):
    moves a flow's data, centred on 0, inside a supply's rails."""

    offset: float = Field(0.0, description="Voltage of data value 0 (normalised volts).")
    scale: float = Field(1.0, gt=0, description="Volts per data unit (> 0).")

    def build(self) -> Encoding:
        return Encoding(self.offset, self.scale)


class CircuitConfig(Section):
    """The circuit: one topology per time slice, a device family, slice boundaries."""

    topology: list[Topology] = Field(
        min_length=1,
        description="A topology for every slice, or a list with one per slice (then `slices` may be omitted).",
    )
    slices: int | None = Field(None, ge=1, description="Number of time slices (depth); default 1 or the list length.")
    times: list[float] | None = Field(
        None, description="Slice boundaries, slices + 1 strictly increasing values; default 0, 1, 2, ..."
    )
    device: Any = Field(
        "ShiftTanh2",
        description="Device family: a name such as ShiftTanh2, or {name: ..., ...}; {name: TransistorTable, card: "
        "bsim4_45nm, ...} tabulates that model card's transistor in ngspice when the circuit is built.",
    )
    init: Annotated[str, one_of(INITIALIZERS)] = Field(
        "kaiming", description=f"Parameter initialiser: {', '.join(INITIALIZERS)}."
    )
    init_inside_clamps: bool = Field(
        True,
        description="Map the initialiser's draw inside the clamps of a family that clamps its parameters "
        "(TransistorTable, MosRelu with gain_min/gain_max; Device.initial): a parameter drawn at a clamp has zero "
        "gradient and never trains. false: the raw draw, as every run before issue 23's fix was trained.",
    )
    capacitance: float = Field(1.0, gt=0, description="Node capacitance to ground (normalised units).")
    fill: Literal["zeros", "repeat"] = Field("zeros", description="How nodes beyond the input start.")
    residual: tuple[int, int] | None = Field(None, description="(i, j): add slice i's output to slice j's output.")
    encoding: EncodingConfig | None = Field(
        None, description="{offset, scale}: inputs and outputs as node voltages offset + scale·x; default the identity."
    )

    @field_validator("topology", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: Any) -> Any:
        try:
            device_template(value)
        except KirchhoffError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("times")
    @classmethod
    def _increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            for k in range(1, len(value)):
                if value[k] <= value[k - 1]:
                    raise ValueError(
                        f"time slices must increase strictly, but times[{k}] = {value[k]} <= times[{k - 1}] = "
                        f"{value[k - 1]}"
                    )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CircuitConfig:
        if len(self.topology) > 1 and self.slices not in (None, len(self.topology)):
            raise ValueError(f"slices: {self.slices} slices but {len(self.topology)} topologies were given")
        if self.times is not None and len(self.times) != self.num_slices + 1:
            raise ValueError(
                f"times: {self.num_slices} slices need {self.num_slices + 1} boundaries, got {len(self.times)}"
            )
        if self.residual is not None and not 0 <= self.residual[0] < self.residual[1] < self.num_slices:
            raise ValueError(f"residual: must be (i, j) with 0 <= i < j < {self.num_slices}, got {self.residual}")
        return self

    @property
    def num_slices(self) -> int:
        return self.slices or len(self.topology)

    def slice_topologies(self) -> list[FullyConnect | NeighborConnect | MixConnect | Chain | RandomGraph]:
        if len(self.topology) == 1:
            return self.topology * self.num_slices
        return list(self.topology)

    @property
    def widths(self) -> list[int]:
        """State nodes (ground excluded) of each slice."""
        return [t.total_nodes - 1 for t in self.slice_topologies()]

    def build(self) -> Circuit:
        """The circuit with freshly initialised parameters (from torch's global RNG)."""
        built: dict[int, Tensor] = {}
        pieces = []
        device = build_device(self.device)
        for t in self.slice_topologies():
            edges = built.setdefault(id(t), t.build())
            pieces.append(
                Slice(
                    edges,
                    device,
                    num_nodes=t.total_nodes,
                    capacitance=self.capacitance,
                    init=self.init,
                    init_inside_clamps=self.init_inside_clamps,
                )
            )
        encoding = None if self.encoding is None else self.encoding.build()
        return Circuit(pieces, times=self.times, fill=self.fill, residual=self.residual, encoding=encoding)


class SolverConfig(Section):
    """How each slice is integrated and how gradients are obtained."""

    method: Annotated[str, one_of(ADAPTIVE_METHODS + FIXED_METHODS)] = Field(
        "dopri5", description="Adaptive: dopri5, bosh3, ...; fixed-step: rk4, euler, ..."
    )
    rtol: float = Field(1e-4, gt=0, description="Relative tolerance of adaptive methods.")
    atol: float = Field(1e-4, gt=0, description="Absolute tolerance of adaptive methods.")
    step_size: float | None = Field(None, gt=0, description="Step of fixed-step methods (time units).")
    first_step: float | None = Field(None, gt=0, description="First step of adaptive methods; default automatic.")
    min_step: float = Field(0.0, ge=0, description="Floor of adaptive steps (0: none).")
    max_steps: int = Field(
        100_000, ge=1, le=MAX_ADAPTIVE_STEPS, description="Adaptive steps per slice before the solve counts as stiff."
    )
    gradient: Literal["adjoint", "backprop"] = Field(
        DEFAULT_GRADIENT.name,
        description="backprop through the solver's steps (exact; the default) or adjoint (memory flat in the steps).",
    )
    adjoint_seminorm: bool = Field(
        False, description="Adjoint step control ignores the parameter adjoints (fewer backward steps); adjoint only."
    )
    kernel: Annotated[str, one_of(KERNELS)] = Field(
        "auto",
        description="KCL evaluation: auto (fastest that applies), gather (reference), affine (torch fused) "
        "or fused (numba).",
    )
    integrator: Annotated[str, one_of(INTEGRATORS)] = Field(
        "auto",
        description="What steps the solve: auto (fused where it applies; the default), torchdiffeq, or fused "
        "(one autograd node per dopri5 slice solve).",
    )

    @model_validator(mode="after")
    def _step_for_fixed(self) -> SolverConfig:
        if self.method in FIXED_METHODS and self.step_size is None:
            raise ValueError(f"step_size: fixed-step method {self.method!r} needs a step size")
        return self

    def build(self) -> Solver:
        return Solver(**self.model_dump(exclude={"gradient", "adjoint_seminorm"}))  # every other key is a Solver field

    def build_gradient(self) -> GradientMethod:
        """The gradient-method object that ``gradient`` and ``adjoint_seminorm`` name."""
        return gradient_method(self.gradient, self.adjoint_seminorm)


def readout_outputs(readout: Any) -> int | None:
    """Outputs a readout spec produces, or None when it passes every final voltage through."""
    try:
        module = resolve_readout(readout)
    except KirchhoffError as exc:
        raise ValueError(str(exc)) from None
    if module is None:
        return None
    spec = module.spec()  # type: ignore[operator]
    return int(spec.get("k", spec.get("out_features", 0)))

"""SPICE netlists of circuit slices: node capacitors with their initial voltage, one current source per edge.

The circuit's normalised units map one to one onto SI units: a node capacitance of 1 is 1 F, a
slice of duration 0.5 runs for 0.5 s, a device current of 1 is 1 A, voltages are volts. Each
state node n becomes ``Cn nn 0 C IC=v0``; each edge of an ideal family (every
[`AffineActivation`][kirchhoffnet.devices.AffineActivation]) becomes a behavioural source
``Be src dst I=post*σ(a*v(src) + b*v(dst) + c)`` whose numbers come from the family's
``coefficients`` and whose σ from its ``spice_activation``. SPICE's current source drives its
current out of its first node and into its second, which is exactly the src → dst convention.

Several samples fit in one netlist as disjoint replicas of the slice (node ``n3_k`` is node 3 of
sample k); they share ground and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from kirchhoffnet.circuit import Circuit, Slice
from kirchhoffnet.devices import AffineActivation, Device
from kirchhoffnet.errors import ConfigError, DeviceError, unknown_choice
from kirchhoffnet.solve.solver import MAX_FIXED_STEPS

METHODS = ("trap", "gear")


@dataclass(frozen=True)
class SpiceOptions:
    """ngspice transient settings; the defaults reach about 1e-5 V on the shared flow checkpoints.

    Attributes:
        reltol: relative tolerance of currents, voltages and truncation error (ngspice default 1e-3).
        abstol: absolute current tolerance in A (default 1e-12).
        vntol: absolute voltage tolerance in V (default 1e-6).
        chgtol: absolute charge tolerance in C (default 1e-14).
        trtol: truncation-error overestimate factor (default 7; 1 trusts the estimate).
        method: integration method, ``trap`` (trapezoidal) or ``gear``.
        max_step_fraction: the largest time step as a fraction of a slice's duration.
        points: output points per slice (the print step is duration / (points − 1)).
        timeout_s: seconds one ngspice process may run.
    """

    reltol: float = 1e-8
    abstol: float = 1e-12
    vntol: float = 1e-9
    chgtol: float = 1e-16
    trtol: float = 1.0
    method: str = "trap"
    max_step_fraction: float = 2e-3
    points: int = 101
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(unknown_choice("ngspice integration method", self.method, METHODS))
        for name in ("reltol", "abstol", "vntol", "chgtol", "trtol", "max_step_fraction", "timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"SpiceOptions.{name} must be a positive number, got {value!r}")
        if self.max_step_fraction > 1:
            raise ConfigError(f"SpiceOptions.max_step_fraction must be at most 1, got {self.max_step_fraction}")
        if int(self.points) < 2:
            raise ConfigError(f"SpiceOptions.points must be at least 2, got {self.points}")
        if int(self.points) > MAX_FIXED_STEPS:  # the print step bounds ngspice's step: as many steps at least
            raise ConfigError(
                f"SpiceOptions.points: {self.points} output points is more than the limit of {MAX_FIXED_STEPS:.0e} "
                "steps per slice"
            )

    @classmethod
    def ngspice_defaults(cls, points: int = 101) -> SpiceOptions:
        """ngspice's own tolerances, with the largest step equal to the print step: its usual speed."""
        return cls(reltol=1e-3, abstol=1e-12, vntol=1e-6, chgtol=1e-14, trtol=7.0, max_step_fraction=1.0, points=points)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def steps(self, duration: float) -> tuple[float, float]:
        """The print step and the largest time step of a slice of ``duration`` seconds."""
        step = duration / (int(self.points) - 1)
        return step, min(step, duration * self.max_step_fraction)

    def control_lines(self, duration: float) -> list[str]:
        """The ``.options`` and ``.tran`` cards for a slice of ``duration`` seconds."""
        step, max_step = self.steps(duration)
        return [
            f".options reltol={self.reltol!r} abstol={self.abstol!r} vntol={self.vntol!r} "
            f"chgtol={self.chgtol!r} trtol={self.trtol!r} method={self.method}",
            f".tran {step!r} {duration!r} 0 {max_step!r} uic",
        ]


def as_circuit(model: Any) -> Circuit:
    """The circuit of a [`Circuit`][kirchhoffnet.Circuit], [`Flow`][kirchhoffnet.Flow] or
    [`Network`][kirchhoffnet.Network]."""
    circuit = model if isinstance(model, Circuit) else getattr(model, "circuit", None)
    if not isinstance(circuit, Circuit) or not isinstance(model, nn.Module):
        raise ConfigError(f"expected a kirchhoffnet Circuit, Flow or Network, got {type(model).__name__}")
    return circuit


def encoding_note(circuit: Circuit) -> str:
    """What a deck's title adds about the circuit's encoding: its initial conditions are encoded voltages, and a
    reader decodes the node voltages to get the model's data (nothing for the identity)."""
    return "" if circuit.encoding.identity else f"; {circuit.encoding.describe()}"


def node_name(node: int, suffix: str = "") -> str:
    """SPICE name of a node: ``0`` for ground, ``n<node><suffix>`` otherwise."""
    return "0" if node == 0 else f"n{node}{suffix}"


def _number(x: float) -> str:
    """A float that round-trips exactly (Python's shortest repr), parenthesised when negative."""
    text = repr(float(x))
    return f"({text})" if x < 0 else text


class Realisation(Protocol):
    """How a slice's edges become SPICE elements.

    ``current_scale_a`` is the current in A of one normalised unit; node capacitances are scaled
    by the same factor, so the dynamics (and times) stay those of the normalised circuit.
    """

    current_scale_a: float

    def preamble(self, piece: Slice) -> list[str]:
        """Model cards and subcircuit definitions the elements need."""
        ...

    def elements(self, piece: Slice) -> Callable[[int, str], str]:
        """``(edge, node suffix) -> element line`` for the edges of ``piece``."""
        ...


class SupplyMetered(Protocol):
    """A [`Realisation`][kirchhoffnet.spice.netlist.Realisation] whose elements draw from DC supply sources, so the
    power the circuit takes can be read off ngspice's branch currents (ideal behavioural sources draw from none)."""

    def supplies(self, piece: Slice, suffix: str) -> list[tuple[str, float]]:
        """``(raw-file current column, source voltage in V)`` of every supply source of the replica ``suffix``."""
        ...


class Behavioural:
    """Each edge an ideal behavioural current source ``B``, its law written from the device's coefficients."""

    current_scale_a = 1.0

    def preamble(self, piece: Slice) -> list[str]:
        return []

    def elements(self, piece: Slice) -> Callable[[int, str], str]:
        device = affine_family(piece.device_family)
        device.spice_activation("u")  # raises a clear error for a family without a SPICE form
        coefficients = [None if t is None else t.tolist() for t in device.coefficients(edge_parameters(piece))]
        src, dst = piece.edge_index.tolist()

        def element(e: int, suffix: str) -> str:
            numbers = [None if k is None else _number(k[e]) for k in coefficients]
            v_src, v_dst = (f"v({node_name(n, suffix)})" for n in (src[e], dst[e]))
            law = affine_law(device, numbers, v_src, v_dst)
            return f"B{e}{suffix} {node_name(src[e], suffix)} {node_name(dst[e], suffix)} I={law}"

        return element


def affine_family(device: Device) -> AffineActivation:
    """``device`` if a parameterised deck can hold it, else a [`DeviceError`][kirchhoffnet.errors.DeviceError] saying
    why not."""
    if not isinstance(device, AffineActivation):
        raise DeviceError(
            f"device family {device.name} is not an activation of an affine voltage combination, "
            "so it has no behavioural-source form; use a family from kirchhoffnet.devices"
        )
    return device


def affine_law(device: AffineActivation, coefficients: Sequence[str | None], v_src: str, v_dst: str) -> str:
    """``post·σ(a·v_src + b·v_dst + c)`` from the expressions ``(a, b, c, post)`` (``None`` as in
    [`coefficients`][kirchhoffnet.devices.AffineActivation.coefficients])."""
    a, b, c, post = coefficients
    if b is None:
        u = f"({v_src}-{v_dst})" if a is None else f"{a}*({v_src}-{v_dst})"
    else:
        u = f"{v_src if a is None else f'{a}*{v_src}'}+{b}*{v_dst}"
    if c is not None:
        u = f"{u}+{c}"
    law = device.spice_activation(u)
    return law if post is None else f"{post}*{law}"


def edge_parameters(piece: Slice) -> torch.Tensor:
    """The slice's (P, E) parameters in float64, checked finite."""
    params = piece.params.detach().to(torch.float64).cpu()
    if not bool(torch.isfinite(params).all()):
        raise DeviceError(
            f"{piece.device_family.name} parameters hold NaN or infinite values; the netlist would be meaningless"
        )
    return params


def slice_netlist(
    piece: Slice,
    init: np.ndarray | torch.Tensor,
    duration: float,
    options: SpiceOptions,
    title: str,
    realisation: Realisation | None = None,
) -> str:
    """The SPICE deck of one slice, for one or several samples.

    Args:
        piece: the slice.
        init: (K, N) initial node voltages in V, one row per sample (K replicas in one netlist).
        duration: the slice's duration in s.
        options: transient settings.
        title: the deck's title line.
        realisation: how edges become elements; default [`Behavioural`][kirchhoffnet.spice.Behavioural] sources.

    Shapes:
        init: (K, N) with N = ``piece.num_state``.
    """
    start = initial_voltages(piece, init)
    realisation = realisation or Behavioural()
    element = realisation.elements(piece)
    caps = (piece.capacitance.detach().to(torch.float64) * realisation.current_scale_a).tolist()
    lines = [f"* {title}".replace("\n", " "), *realisation.preamble(piece)]
    for k, row in enumerate(start):
        suffix = f"_{k}" if len(start) > 1 else ""
        lines.append(f"* sample {k}")
        lines.extend(
            f"C{n}{suffix} {node_name(n, suffix)} 0 {caps[n - 1]!r} IC={float(row[n - 1])!r}"
            for n in range(1, piece.num_nodes)
        )
        lines.extend(element(e, suffix) for e in range(piece.num_edges))
    lines += [*options.control_lines(duration), ".end", ""]
    return "\n".join(lines)


def initial_voltages(piece: Slice, init: np.ndarray | torch.Tensor) -> np.ndarray:
    """``init`` as a float64 (samples, state nodes) array, refused unless it fits ``piece`` and is finite."""
    start = np.asarray(init.detach().cpu() if isinstance(init, torch.Tensor) else init, dtype=np.float64)
    if start.ndim != 2 or start.shape[1] != piece.num_state:
        raise ConfigError(
            f"initial voltages must have shape (samples, {piece.num_state}) for this slice, got {start.shape}"
        )
    if not np.isfinite(start).all():
        raise ConfigError("initial voltages hold NaN or infinite values")
    return start


def node_columns(piece: Slice, samples: int, sample: int) -> list[str]:
    """Raw-file variable names of the state nodes of ``sample`` in a netlist of ``samples`` replicas."""
    suffix = f"_{sample}" if samples > 1 else ""
    return [f"v({node_name(n, suffix)})" for n in range(1, piece.num_nodes)]


def slice_durations(circuit: Circuit) -> Sequence[float]:
    times = circuit.times
    return [times[k + 1] - times[k] for k in range(circuit.num_slices)]

"""MosRelu edges built from transistors: the subcircuit, the fit of θ to widths and biases, the I-V check.

Each edge is one NMOS transistor (the model card is a parameter: SPICE level 1, BSIM4, ...) with
its source at ground and its drain held ``V_DS`` above it. An ideal front end (a behavioural
voltage source) drives its gate to ``V_b + pol·(v(s) − v(d))`` and an ideal mirror (a
current-controlled current source) passes its drain current from the edge's source terminal to its
destination. The rectifying, square-law nonlinearity is the transistor's own; the affine front end
and the mirror are ideal, so the departure measured here is the transistor's.

The fit follows the level-1 triode law ``I = K·(W/L)·V_DS·(V_GS − V_T − V_DS/2)`` (K includes
1 + λV_DS): ``W/L = |θ1|·I_unit / (K·V_DS)``, ``V_b = V_T + V_DS/2 + θ2/|θ1|``, ``pol = sgn θ1``.
K and V_T come from an ngspice DC sweep of the card itself (the maximum-transconductance tangent),
which is exact for level 1 and the usual linear-extrapolation threshold for other models.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from kirchhoffnet.circuit import Slice
from kirchhoffnet.devices import MosRelu, TransistorTable
from kirchhoffnet.errors import ConfigError, DeviceError, shown
from kirchhoffnet.spice._runner import run_ngspice
from kirchhoffnet.spice.model_cards import ModelCard, Transistor, load_card
from kirchhoffnet.spice.tabulation import card_sha256, gate_sweep, physical_width

if TYPE_CHECKING:  # drawing is optional: checking transistors does not load matplotlib
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
from kirchhoffnet.spice.netlist import as_circuit, edge_parameters, node_name

SUBCIRCUIT = "kn_mosrelu"
_SQUARES = 10.0  # W/L of the transistor characterised; the fit scales widths from it


def level1_card(
    name: str = "kn_nmos", threshold_v: float = 0.5, kp_a_per_v2: float = 1e-4, lambda_per_v: float = 0.0
) -> str:
    """A SPICE level-1 (Shichman–Hodges) NMOS ``.model`` card."""
    return f".model {name} nmos (level=1 vto={threshold_v!r} kp={kp_a_per_v2!r} lambda={lambda_per_v!r})"


@dataclass(frozen=True)
class MosTechnology:
    """The transistors a MosRelu circuit is built from.

    Attributes:
        model_card: ``.model`` card(s) of an NMOS, any SPICE level (1, BSIM4 = 14/54, ...).
        model_name: the model's name in the card.
        length_m: channel length of every transistor in m; widths are fitted.
        current_scale_a: current in A of one normalised unit (node capacitances scale alike).
    """

    model_card: str = field(default_factory=level1_card)
    model_name: str = "kn_nmos"
    length_m: float = 1e-6
    current_scale_a: float = 1e-4

    def __post_init__(self) -> None:
        if f".model {self.model_name.lower()} " not in self.model_card.lower():
            raise ConfigError(
                f"model_card defines no '.model {self.model_name} nmos ...'; got {shown(self.model_card)}"
            )
        for name in ("length_m", "current_scale_a"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"MosTechnology.{name} must be positive, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Characterisation:
    """The transistor seen through the fit's triode law at one drain bias.

    Attributes:
        transconductance_a_per_v2: K in ``I = K·(W/L)·V_DS·(V_GS − V_T − V_DS/2)``.
        threshold_v: V_T.
        drain_voltage_v: the drain bias V_DS it was measured at.
    """

    transconductance_a_per_v2: float
    threshold_v: float
    drain_voltage_v: float


def characterise(technology: MosTechnology, drain_voltage_v: float, gate_max_v: float = 3.0) -> Characterisation:
    """Measure K and V_T of the card in ngspice: a V_GS sweep at V_DS, tangent at the largest g_m."""
    width_m = _SQUARES * technology.length_m
    gate, currents = gate_sweep(
        technology.model_card, technology.model_name, drain_voltage_v, technology.length_m, [width_m], gate_max_v, 301
    )
    current = currents[:, 0]
    if not current[-1] > 1e-9:  # leakage and gmin alone stay far below a nanoampere
        raise DeviceError(
            f"the transistor {technology.model_name} conducts no current (at most {current[-1]:.2g} A) for V_GS "
            f"up to {gate_max_v} V; check the model card's threshold"
        )
    slope = np.gradient(current, gate)
    k = int(np.argmax(slope))
    intercept = gate[k] - current[k] / slope[k]  # where the tangent crosses zero: V_T + V_DS/2
    return Characterisation(
        transconductance_a_per_v2=float(slope[k] / (_SQUARES * drain_voltage_v)),
        threshold_v=float(intercept - drain_voltage_v / 2),
        drain_voltage_v=drain_voltage_v,
    )


@dataclass
class TransistorFit:
    """Per-edge transistor sizes and gate biases realising learned (θ1, θ2).

    Attributes:
        width_m: (E,) channel widths in m.
        length_m: channel length in m.
        gate_bias_v: (E,) gate bias V_b in V (gate voltage at zero terminal drop).
        polarity: (E,) ±1: which terminal drop the gate follows.
        characterisation: the transistor parameters the fit used.
    """

    width_m: np.ndarray
    length_m: float
    gate_bias_v: np.ndarray
    polarity: np.ndarray
    characterisation: Characterisation

    def instance(self, e: int) -> str:
        """The subcircuit name and parameters of edge ``e``, for an ``X`` line."""
        return (
            f"{SUBCIRCUIT} w={float(self.width_m[e])!r} l={float(self.length_m)!r} "
            f"vb={float(self.gate_bias_v[e])!r} pol={float(self.polarity[e])!r}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Ranges of the fitted values, for reports."""
        ratio = self.width_m / self.length_m
        return {
            "edges": len(self.width_m),
            "length_m": self.length_m,
            "width_over_length_min": float(ratio.min()),
            "width_over_length_max": float(ratio.max()),
            "gate_bias_v_min": float(self.gate_bias_v.min()),
            "gate_bias_v_max": float(self.gate_bias_v.max()),
            "transconductance_a_per_v2": self.characterisation.transconductance_a_per_v2,
            "threshold_v": self.characterisation.threshold_v,
            "drain_voltage_v": self.characterisation.drain_voltage_v,
        }


def fit_transistors(
    gain: np.ndarray, shift: np.ndarray, technology: MosTechnology, characterisation: Characterisation
) -> TransistorFit:
    """Map learned θ1 (``gain``) and θ2 (``shift``), each (E,), to widths, biases and polarities."""
    gain, shift = np.asarray(gain, dtype=np.float64), np.asarray(shift, dtype=np.float64)
    magnitude = np.maximum(np.abs(gain), 1e-12)  # the device's own floor: zero gain is a limit
    vds = characterisation.drain_voltage_v
    squares = magnitude * technology.current_scale_a / (characterisation.transconductance_a_per_v2 * vds)
    return TransistorFit(
        width_m=squares * technology.length_m,
        length_m=technology.length_m,
        gate_bias_v=characterisation.threshold_v + vds / 2 + shift / magnitude,
        polarity=np.where(gain < 0, -1.0, 1.0),
        characterisation=characterisation,
    )


def subcircuit(
    technology: MosTechnology,
    drain_voltage_v: float,
    gate_max_v: float | None = None,
    transistor: Transistor = "nmos",
    supply_v: float = 0.0,
) -> list[str]:
    """The card and the ``kn_mosrelu s d`` subcircuit (parameters w, l, vb, pol).

    With ``gate_max_v`` the front end clamps the gate drive to ``[0, gate_max_v]``, the range that a
    [`TransistorTable`][kirchhoffnet.devices.TransistorTable] holds (its law is flat past it). A PMOS has its
    source and bulk at the supply ``supply_v``, its gate ``V_SG`` below it and its drain ``V_DS`` below it; the
    current out of its drain is mirrored as an NMOS's current into its drain is."""
    drive = "{vb}+{pol}*(v(s)-v(d))"
    clamp = "" if gate_max_v is None else f", clamped to [0, {gate_max_v!r}] V"
    if gate_max_v is not None:
        drive = f"min(max({drive},0),{gate_max_v!r})"
    if transistor == "pmos":
        bias = ["Vsup sup 0 " + repr(supply_v), f"Bg sup g V={drive}", f"Vd sup dd {drain_voltage_v!r}"]
        device = f"M1 dd g sup sup {technology.model_name} W={{w}} L={{l}}"
    else:
        bias = [f"Bg g 0 V={drive}", f"Vd dd 0 {drain_voltage_v!r}"]
        device = f"M1 dd g 0 0 {technology.model_name} W={{w}} L={{l}}"
    return [
        technology.model_card,
        f".subckt {SUBCIRCUIT} s d params: w=1e-6 l=1e-6 vb=0 pol=1",
        "* ideal front end: the gate drive follows the terminal drop, offset by the fitted bias" + clamp,
        *bias,
        device,
        "* ideal mirror: the drain current flows from s to d",
        "F1 s d Vd -1",
        ".ends",
    ]


class TransistorRelu:
    """Realisation of [`MosRelu`][kirchhoffnet.devices.MosRelu] slices by the transistor subcircuit.

    Args:
        technology: the transistor model and scales.
    """

    def __init__(self, technology: MosTechnology | None = None) -> None:
        self.technology = technology or MosTechnology()
        self.current_scale_a = self.technology.current_scale_a
        self._characterised: dict[float, Characterisation] = {}

    def characterisation(self, drain_voltage_v: float) -> Characterisation:
        """The card's K and V_T at this drain bias, measured once."""
        if drain_voltage_v not in self._characterised:
            self._characterised[drain_voltage_v] = characterise(self.technology, drain_voltage_v)
        return self._characterised[drain_voltage_v]

    def fit(self, piece: Slice) -> TransistorFit:
        """Transistor sizes and biases for every edge of a MosRelu slice."""
        device = piece.device_family
        if not isinstance(device, MosRelu):
            raise DeviceError(
                f"the transistor-level ReLU realises MosRelu edges, but this slice uses {device.name}; "
                "train or build the circuit with device='MosRelu', or export it with behavioural sources"
            )
        with torch.no_grad():
            gain, shift = edge_parameters(piece)
            magnitude = device.gain_magnitude(gain)  # the device's own clamps: the width it builds
        return fit_transistors(
            torch.where(gain < 0, -magnitude, magnitude).numpy(),
            shift.numpy(),
            self.technology,
            self.characterisation(device.drain_voltage_v),
        )

    def preamble(self, piece: Slice) -> list[str]:
        return subcircuit(self.technology, self.fit(piece).characterisation.drain_voltage_v)

    def elements(self, piece: Slice) -> Callable[[int, str], str]:
        fit = self.fit(piece)
        src, dst = piece.edge_index.tolist()

        def element(e: int, suffix: str) -> str:
            return f"X{e}{suffix} {node_name(src[e], suffix)} {node_name(dst[e], suffix)} {fit.instance(e)}"

        return element

    def supplies(self, piece: Slice, suffix: str) -> list[tuple[str, float]]:
        """Each edge's drain bias source ``Vd``: its current is the transistor's drain current at ``V_DS``."""
        drain_voltage_v = self.fit(piece).characterisation.drain_voltage_v
        return [(f"i(v.x{e}{suffix}.vd)", drain_voltage_v) for e in range(piece.num_edges)]


class TableTransistors:
    """Realisation of [`TransistorTable`][kirchhoffnet.devices.TransistorTable] slices by the same ``kn_mosrelu``
    subcircuit, with the card (NMOS or PMOS) the table was tabulated from.

    Edge ``e`` gets the family's own clamped coefficients: polarity ``pol = a_e``, gate bias
    ``vb = c_e`` and the drawn width of ``post_e`` reference widths
    (`kirchhoffnet.spice.tabulation.physical_width`); one normalised current unit is the
    table's current unit in A.

    Args:
        card: the model card; its text must hash to the table's ``card_sha256``.
        device: the tabulated family every slice uses.
    """

    def __init__(self, card: ModelCard, device: TransistorTable) -> None:
        source = device.source
        if source.get("card_sha256") != card_sha256(card):
            raise DeviceError(
                f"the TransistorTable was tabulated from card {shown(source.get('card', 'unknown'))} "
                f"(sha256 {str(source.get('card_sha256'))[:12]}), not from {shown(card.name)}; give that card"
            )
        self.device = device
        self.current_scale_a = float(source["current_unit_a"])
        self.technology = MosTechnology(card.text, source["model_name"], source["length_m"], self.current_scale_a)

    def preamble(self, piece: Slice) -> list[str]:
        source = self.device.source
        device = self.device
        transistor = source.get("transistor", "nmos")
        return subcircuit(self.technology, source["drain_voltage_v"], device.gate_max_v, transistor, device.supply_v)

    def elements(self, piece: Slice) -> Callable[[int, str], str]:
        if piece.device_family != self.device:
            other = "another TransistorTable" if isinstance(piece.device_family, TransistorTable) else None
            raise DeviceError(
                f"the transistors realise the TransistorTable tabulated from {self.device.source.get('card')}; "
                f"this slice uses {other or piece.device_family.name}: export one tabulation at a time"
            )
        with torch.no_grad():
            polarity, _, bias, width = self.device.coefficients(edge_parameters(piece))
        widths = physical_width(self.device, width.numpy())
        length = self.technology.length_m
        src, dst = piece.edge_index.tolist()

        def element(e: int, suffix: str) -> str:
            return (
                f"X{e}{suffix} {node_name(src[e], suffix)} {node_name(dst[e], suffix)} {SUBCIRCUIT} "
                f"w={float(widths[e])!r} l={length!r} vb={float(bias[e])!r} pol={float(polarity[e])!r}"
            )

        return element

    def supplies(self, piece: Slice, suffix: str) -> list[tuple[str, float]]:
        """Each edge's drain bias source ``Vd``, as [`TransistorRelu`][kirchhoffnet.spice.TransistorRelu]'s."""
        drain_voltage_v = float(self.device.source["drain_voltage_v"])
        return [(f"i(v.x{e}{suffix}.vd)", drain_voltage_v) for e in range(piece.num_edges)]


def table_transistors(model: Any, card: str | os.PathLike[str] | None = None) -> TableTransistors | None:
    """The transistor realisation of a model whose slices use one TransistorTable; None if none uses one.

    Args:
        model: a Circuit, Flow or Network.
        card: a shipped card's name or a card file; default the card the table names (a shipped one).
    """
    circuit = as_circuit(model)
    families = [circuit.slice(k).device_family for k in range(circuit.num_slices)]
    tables = [f for f in families if isinstance(f, TransistorTable)]
    if not tables:
        return None
    if len(tables) != len(families) or any(f != tables[0] for f in tables):
        raise DeviceError(
            "transistor export needs every slice to use one and the same TransistorTable; this model's slices use "
            f"{[f.name for f in families]}, not all the same table"
        )
    device = tables[0]
    chosen = card if card is not None else device.source.get("card")
    if chosen is None:
        raise DeviceError("this TransistorTable names no model card (it was not tabulated); give --model-card")
    source = device.source
    return TableTransistors(load_card(chosen, source.get("model_name"), source.get("transistor", "nmos")), device)


@dataclass
class IVDeparture:
    """How transistor-level edges' I-V curves depart from the ideal ReLU and from the MosRelu model.

    Currents are in normalised units (A / ``current_scale_a``), like the simulator's.

    Attributes:
        max_abs_error_ideal: largest |measured − relu(θ1·Δv + θ2)| over the sweep and edges.
        rms_error_ideal: its root mean square.
        max_abs_error_model: largest |measured − MosRelu(Δv)|: what the simulator does not capture.
        rms_error_model: its root mean square.
        peak_current: largest |ideal current| in the sweep, the scale of the errors.
        fit: the fitted transistors.
        drop_v: (T,) swept terminal drops v_src − v_dst in V.
        measured: (T, E) ngspice's currents; ideal: (T, E); model: (T, E).
    """

    max_abs_error_ideal: float
    rms_error_ideal: float
    max_abs_error_model: float
    rms_error_model: float
    peak_current: float
    fit: TransistorFit
    drop_v: np.ndarray = field(repr=False)
    measured: np.ndarray = field(repr=False)
    ideal: np.ndarray = field(repr=False)
    model: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        scalars = ("max_abs_error_ideal", "rms_error_ideal", "max_abs_error_model", "rms_error_model", "peak_current")
        return {**{k: getattr(self, k) for k in scalars}, "fit": self.fit.to_dict()}

    def figure(self, max_edges: int = 4, ax: Axes | None = None) -> Figure:
        """Measured, ideal-ReLU and MosRelu-model I-V curves of the first edges."""
        from kirchhoffnet.io.figures import one_axes

        fig, ax, ours = one_axes(ax, (6, 4))
        for e in range(min(max_edges, self.measured.shape[1])):
            line = ax.plot(self.drop_v, self.measured[:, e], lw=2, label=f"edge {e} transistors (ngspice)")[0]
            ax.plot(self.drop_v, self.ideal[:, e], ls="--", color=line.get_color(), lw=1, label=f"edge {e} ideal ReLU")
            ax.plot(self.drop_v, self.model[:, e], ls=":", color="k", lw=1)
        ax.set_xlabel("v_src − v_dst (V)")
        ax.set_ylabel("current (normalised units)")
        ax.set_title(
            f"MosRelu I-V: max departure from ReLU {self.max_abs_error_ideal:.3g}, from model (dotted) "
            f"{self.max_abs_error_model:.2g}",
            fontsize=9,
        )
        ax.legend(fontsize=7)
        if ours:
            fig.tight_layout()
        return fig


def iv_departure(
    gain: np.ndarray | torch.Tensor,
    shift: np.ndarray | torch.Tensor,
    technology: MosTechnology | None = None,
    drain_voltage_v: float = 0.1,
    drop_range_v: tuple[float, float] = (-2.0, 2.0),
    points: int = 401,
) -> IVDeparture:
    """DC-sweep transistor-level edges in ngspice and compare them with the ideal ReLU and MosRelu.

    Args:
        gain: (E,) learned θ1 of the edges to check.
        shift: (E,) learned θ2.
        technology: transistor model and scales.
        drain_voltage_v: the drain bias V_DS (the MosRelu hyperparameter).
        drop_range_v: the swept range of v_src − v_dst in V (v_dst held at 0).
        points: sweep points.
    """
    technology = technology or MosTechnology()
    gains = np.atleast_1d(np.asarray(gain, dtype=np.float64))
    shifts = np.atleast_1d(np.asarray(shift, dtype=np.float64))
    if gains.shape != shifts.shape or gains.ndim != 1:
        raise ConfigError(f"gain and shift must be matching 1-D arrays, got shapes {gains.shape} and {shifts.shape}")
    if not drop_range_v[1] > drop_range_v[0] or int(points) < 2:
        raise ConfigError(f"drop_range_v must increase and points be >= 2, got {drop_range_v} and {points}")
    fit = fit_transistors(gains, shifts, technology, characterise(technology, drain_voltage_v))
    lines = ["* kirchhoffnet MosRelu I-V sweep", *subcircuit(technology, drain_voltage_v), "Vs s 0 0"]
    for e in range(len(gains)):
        lines += [
            f"Vm{e} s m{e} 0",
            f"X{e} m{e} 0 {fit.instance(e)}",
        ]
    low, high = drop_range_v
    lines += [f".dc Vs {low!r} {high!r} {(high - low) / (int(points) - 1)!r}", ".end", ""]
    plot = run_ngspice("\n".join(lines)).plot("dc")
    drop = plot["v(s)"]
    measured = np.stack([plot[f"i(vm{e})"] for e in range(len(gains))], axis=1) / technology.current_scale_a
    ideal = np.maximum(gains * drop[:, None] + shifts, 0.0)
    device = MosRelu(drain_voltage_v)
    with torch.no_grad():
        v = torch.from_numpy(drop)[:, None].expand(-1, len(gains))
        params = torch.from_numpy(np.stack([gains, shifts]))[:, None, :]
        model = device.current(v, torch.zeros_like(v), params).numpy()
    ideal_error, model_error = measured - ideal, measured - model
    return IVDeparture(
        max_abs_error_ideal=float(np.abs(ideal_error).max()),
        rms_error_ideal=float(np.sqrt(np.mean(ideal_error**2))),
        max_abs_error_model=float(np.abs(model_error).max()),
        rms_error_model=float(np.sqrt(np.mean(model_error**2))),
        peak_current=float(np.abs(ideal).max()),
        fit=fit,
        drop_v=drop,
        measured=measured,
        ideal=ideal,
        model=model,
    )


def model_iv_departure(
    model: Any,
    technology: MosTechnology | None = None,
    edges_per_slice: int = 16,
    drop_range_v: tuple[float, float] = (-2.0, 2.0),
    points: int = 401,
) -> IVDeparture:
    """[`iv_departure`][kirchhoffnet.spice.iv_departure] of the first ``edges_per_slice`` edges of every slice of a
    MosRelu model."""
    circuit = as_circuit(model)
    pieces = [circuit.slice(k) for k in range(circuit.num_slices)]
    names = sorted({piece.device_family.name for piece in pieces})
    if names != ["MosRelu"]:
        raise DeviceError(f"the I-V check needs a model whose slices all use MosRelu; this one uses {names}")
    biases = sorted({piece.device_family.drain_voltage_v for piece in pieces})  # type: ignore[attr-defined]
    if len(biases) != 1:
        raise DeviceError(f"the slices use different MosRelu drain biases {biases} V; check one slice at a time")
    theta = np.concatenate([edge_parameters(piece)[:, :edges_per_slice].numpy() for piece in pieces], axis=1)
    return iv_departure(theta[0], theta[1], technology, biases[0], drop_range_v, points)

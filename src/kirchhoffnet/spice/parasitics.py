"""The edge transistors' own terminal capacitances, added to the node capacitances: what they cost in speed.

A [`TransistorTable`][kirchhoffnet.devices.TransistorTable] edge is one transistor of the card it was tabulated
from (`kirchhoffnet.spice.mos`). Built from real devices, its front end senses both terminals and its mirror
drives one of them, so each node it touches carries the transistor's gate capacitance ``C_gg`` and drain
capacitance ``C_dd``; both are added, in full, to the capacitance of every state node the edge touches (ground
takes none). A slice's devices are taken to be switched onto the nodes only while it runs (as the gated devices
of the whole-network deck are), so in slice k a node carries slice k's transistors only.

The capacitances are measured in ngspice at each edge's operating point at zero terminal drop (gate drive
``V_b``, drain ``V_DS`` from the source; a PMOS's source and bulk at the supply) by one small-signal AC
analysis: ``C = Im(i)/(2πf)`` of the source driving the gate (with the drain held) or the drain (with the gate
held), so every card level works, not only those that report capacitances at their operating point.

Farads become the circuit's normalised capacitance through the physical time unit ``T`` (seconds per unit of
circuit time) and the table's current unit ``I_u`` (A): KCL ``C·dV/dt = I`` in ``t = T·τ`` reads
``c·dv/dτ = i`` with ``c = C/(I_u·T)``. So the same farads weigh more the faster the circuit runs: the
slowdown ``(c + Δc)/c`` of each node is ``1 + ΔC/(c·I_u·T)``.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.errors import ConfigError, DeviceError
from kirchhoffnet.solve import simulate
from kirchhoffnet.spice._runner import run_ngspice
from kirchhoffnet.spice.mos import TableTransistors, table_transistors
from kirchhoffnet.spice.netlist import as_circuit, edge_parameters
from kirchhoffnet.spice.tabulation import physical_width
from kirchhoffnet.spice.verify import REFERENCE_SOLVER

FREQUENCY_HZ = 1e6
"""The AC analysis' frequency: far below any transistor's cut-off (quasi-static capacitances), high enough
that ``ωC`` of an attofarad stands far above ngspice's gmin conductances in magnitude (they are real anyway)."""


@dataclass(frozen=True)
class Parasitics:
    """The node capacitances a model's edge transistors add, per slice.

    Attributes:
        time_unit_s: seconds of physical time per unit of circuit time.
        current_unit_a: amperes per unit of normalised current (the table's).
        added_f: per slice, (N,) the capacitance in F added to each state node.
        gate_f: per slice, (E,) each edge transistor's C_gg in F.
        drain_f: per slice, (E,) each edge transistor's C_dd in F.
    """

    time_unit_s: float
    current_unit_a: float
    added_f: list[np.ndarray] = field(repr=False)
    gate_f: list[np.ndarray] = field(repr=False)
    drain_f: list[np.ndarray] = field(repr=False)

    def normalised(self, k: int) -> Tensor:
        """Slice k's added capacitance in the circuit's normalised units, ``ΔC/(I_u·T)``."""
        return torch.from_numpy(self.added_f[k] / (self.current_unit_a * self.time_unit_s))

    def to_dict(self, model: Any) -> dict[str, Any]:
        """The figures of the report: the transistors' capacitances and each slice's slowdown ``(c + Δc)/c``,
        mean and max over its nodes, for ``model`` (the model the capacitances were measured on)."""
        circuit = as_circuit(model)
        ratios = [
            1 + self.normalised(k).numpy() / circuit.slice(k).capacitance.detach().double().numpy()
            for k in range(circuit.num_slices)
        ]
        gates, drains = np.concatenate(self.gate_f), np.concatenate(self.drain_f)
        return {
            "time_unit_s": self.time_unit_s,
            "current_unit_a": self.current_unit_a,
            "gate_capacitance_f": [float(gates.min()), float(gates.max())],
            "drain_capacitance_f": [float(drains.min()), float(drains.max())],
            "added_capacitance_f_max": max(float(a.max()) for a in self.added_f),
            "slowdown_mean": [float(r.mean()) for r in ratios],
            "slowdown_max": [float(r.max()) for r in ratios],
        }


def device_parasitics(model: Any, time_unit_s: float, card: str | os.PathLike[str] | None = None) -> Parasitics:
    """Measure every edge transistor's C_gg and C_dd in ngspice and sum them onto the nodes each edge touches.

    Args:
        model: a Circuit, Flow or Network whose slices use one TransistorTable.
        time_unit_s: physical seconds per unit of circuit time (``1e-9``: a slice of duration 1 runs 1 ns).
        card: a shipped card's name or a card file; default the card the table was tabulated from.
    """
    if not (isinstance(time_unit_s, (int, float)) and math.isfinite(time_unit_s) and time_unit_s > 0):
        raise ConfigError(f"the time unit must be a positive number of seconds, got {time_unit_s!r}")
    realisation = table_transistors(model, card)
    if realisation is None:
        raise DeviceError(
            "device parasitics come from the transistors of a TransistorTable model; this model uses none "
            "(train it with device: {name: TransistorTable, card: ...})"
        )
    circuit = as_circuit(model)
    added, gates, drains = [], [], []
    for k in range(circuit.num_slices):
        piece = circuit.slice(k)
        with torch.no_grad():
            _, _, bias, width = realisation.device.coefficients(edge_parameters(piece))
        gate, drain = _terminal_capacitances(
            realisation, bias.numpy(), physical_width(realisation.device, width.numpy())
        )
        on_node = np.zeros(piece.num_nodes)
        for ends in piece.edge_index.numpy():  # both terminals: the front end senses them, the mirror drives them
            np.add.at(on_node, ends, gate + drain)
        added.append(on_node[1:])  # ground takes none
        gates.append(gate)
        drains.append(drain)
    return Parasitics(float(time_unit_s), realisation.current_scale_a, added, gates, drains)


def _terminal_capacitances(
    realisation: TableTransistors, gate_bias_v: np.ndarray, width_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(C_gg, C_dd) in F, (E,) each, of transistors of these widths at gate drive ``gate_bias_v`` and the table's
    drain bias, from one ngspice AC analysis: a copy of each transistor per terminal driven."""
    source = realisation.device.source
    pmos = source.get("transistor", "nmos") == "pmos"
    technology = realisation.technology
    node = "sup" if pmos else "0"
    drain_v = float(source["drain_voltage_v"])
    lines = ["* kirchhoffnet terminal capacitances", technology.model_card]
    lines += [f"Vsup sup 0 {realisation.device.supply_v!r}"] if pmos else []
    for e, (bias, width) in enumerate(zip(gate_bias_v.tolist(), width_m.tolist(), strict=True)):
        for terminal in ("g", "d"):  # the terminal the AC source drives; the other is held
            gate_ac, drain_ac = (" AC 1", "") if terminal == "g" else ("", " AC 1")
            g, d = f"g{terminal}{e}", f"d{terminal}{e}"
            # a PMOS's drives are V_SG and V_SD: its sources stand between the supply and the terminal
            gate_ends, drain_ends = (f"{node} {g}", f"{node} {d}") if pmos else (f"{g} 0", f"{d} 0")
            lines += [
                f"Vg{terminal}{e} {gate_ends} DC {bias!r}{gate_ac}",
                f"Vd{terminal}{e} {drain_ends} DC {drain_v!r}{drain_ac}",
                f"M{terminal}{e} {d} {g} {node} {node} {technology.model_name} W={width!r} L={technology.length_m!r}",
            ]
    lines += [f".ac lin 1 {FREQUENCY_HZ!r} {FREQUENCY_HZ!r}", ".end", ""]
    plot = run_ngspice("\n".join(lines)).plot("ac")
    omega = 2 * math.pi * FREQUENCY_HZ
    count = len(gate_bias_v)
    gate = np.array([abs(float(np.imag(plot[f"i(vgg{e})"][0]))) / omega for e in range(count)])
    drain = np.array([abs(float(np.imag(plot[f"i(vdd{e})"][0]))) / omega for e in range(count)])
    return gate, drain


def with_parasitics(model: Any, parasitics: Parasitics) -> Any:
    """A copy of ``model`` whose node capacitances include the edge transistors' (the original is untouched)."""
    loaded = copy.deepcopy(model)
    circuit = as_circuit(loaded)
    if len(parasitics.added_f) != circuit.num_slices:
        raise ConfigError(
            f"the parasitics were measured on {len(parasitics.added_f)} slices, this model has {circuit.num_slices}"
        )
    # New tensors, from the capacitances as they were: a slice module or a tensor shared between slices is
    # loaded once per slice that uses it, not once more for every other use.
    before = [circuit.slice(k).capacitance.detach().clone() for k in range(circuit.num_slices)]
    for k, capacitance in enumerate(before):
        circuit.slice(k).capacitance = capacitance + parasitics.normalised(k).to(capacitance)
    return loaded


def parasitic_shift(model: Any, parasitics: Parasitics, x: Tensor) -> dict[str, Any]:
    """What the parasitics do to ``x``'s outputs in kirchhoffnet: the report's figures plus the largest change of
    a final node voltage (V) between the model with and without them."""
    plain = copy.deepcopy(as_circuit(model)).to(torch.float64)
    loaded = as_circuit(with_parasitics(model, parasitics)).to(torch.float64)
    inputs = x.to(torch.float64)
    with torch.no_grad():
        ours, theirs = (simulate(c, inputs, solver=REFERENCE_SOLVER)[0] for c in (loaded, plain))
    return {**parasitics.to_dict(model), "output_shift_v_max": float((ours - theirs).abs().max())}


def load_parasitics(
    model: Any, x: Tensor, time_unit_s: float, card: str | os.PathLike[str] | None = None
) -> tuple[Any, dict[str, Any]]:
    """``model`` with its edge transistors' capacitances on its nodes, and
    [`parasitic_shift`][kirchhoffnet.spice.parasitic_shift]'s figures on ``x``: what ``--parasitics`` runs."""
    measured = device_parasitics(model, time_unit_s, card)
    return with_parasitics(model, measured), parasitic_shift(model, measured, x)

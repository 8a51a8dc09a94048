"""Latency, currents, energy and voltage swing of one inference, in physical units.

The waveforms come from [`kirchhoffnet.trajectory`][kirchhoffnet.trajectory]; the power along them from
[`Slice.power`][kirchhoffnet.Slice.power] ([`kirchhoffnet.circuit.power`][kirchhoffnet.circuit.power]), integrated by
the trapezoidal rule into an [`EnergyTally`][kirchhoffnet.circuit.EnergyTally] in normalised units;
[`kirchhoffnet.hardware.energy`][kirchhoffnet.hardware.energy] scales it by a
[`PhysicalDesign`][kirchhoffnet.hardware.PhysicalDesign] at the end, as it does a score circuit's generation.

Energy bookkeeping. The power a device absorbs is ``P_e = i_e·(v_src − v_dst)`` (current flows
src → dst). A device with ``P_e > 0`` dissipates; one with ``P_e < 0`` *delivers* power into the
circuit, which only an active device (a transconductor fed by the supply) can do. Summing KCL
against the node voltages gives the conservation law

    Σ_e P_e = −d/dt Σ_n ½ c_n v_n²,

so over a slice ``E_dissipated − E_delivered = E_stored(start) − E_stored(end)``: the report
checks it as ``energy_balance_residual``. The energy of an inference is what a supply must
provide at the least:

    energy_j = E_load + E_delivered,

* ``E_load``: driving a node from ``u`` to ``w`` through a switch draws ``c·w·(w − u)`` from the
  driver (half stored, half lost in the switch when u = 0); summed over the inputs at t = 0 and
  over nodes that change at a slice boundary (``fill="repeat"``, residual additions), counting
  only draws (a driver does not recover energy);
* ``E_delivered = ∫ Σ_e max(−P_e, 0) dt``: the power active devices put into the circuit, taken
  from the supply with ideal efficiency.

Both terms are ≥ 0, hence ``energy_j ≥ 0``. Heat in the devices, ``E_dissipated = ∫ Σ_e max(P_e, 0)
dt``, is reported alongside. A realistic transconductor draws its whole output current from the
rails, which ``energy_rail_bound_j = ∫ Σ_e |i_e| dt × (supply span)`` bounds from above. The bias
currents of the transistors that realise the devices are not modelled. Where the nodes leave the supply
is [`kirchhoffnet.hardware.supply`][kirchhoffnet.hardware.supply].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from kirchhoffnet._progress import bar
from kirchhoffnet.circuit import Circuit, EnergyTally, Slice
from kirchhoffnet.circuit.power import charging_energy, stored_energy, trapezoid_weights
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware.energy import energies, latency
from kirchhoffnet.hardware.supply import Violation, violations, voltage_scale_to_fit
from kirchhoffnet.hardware.units import PhysicalDesign
from kirchhoffnet.models import Flow, Network
from kirchhoffnet.solve import Solver, resolve_solver, trajectory

Model = Circuit | Flow | Network

# Power evaluations are chunked over time points to keep about this many elements
# (time × batch × edges) alive at once: 32 MiB of float64.
_CHUNK_ELEMENTS = 1 << 22


def circuit_of(model: Model) -> Circuit:
    """The circuit inside a Flow or Network, or the circuit itself."""
    if isinstance(model, Circuit):
        return model
    if isinstance(model, (Flow, Network)):
        return model.circuit
    raise ConfigError(f"expected a Circuit, Flow or Network, got {type(model).__name__}")


def slices_of(model: Model) -> list[Slice]:
    """The time slices of a model's circuit, in order."""
    circuit = circuit_of(model)
    return [circuit.slice(k) for k in range(circuit.num_slices)]


def solver_of(model: Model, solver: Solver | str | dict[str, Any] | None) -> Solver:
    """``solver`` if given, else the model's own solver settings, else the default."""
    if solver is not None:
        return resolve_solver(solver)
    return resolve_solver(getattr(model, "solver", None))


@dataclass
class HardwareReport:
    """What one inference costs on the physical design; energies and currents are batch means
    unless named ``peak``.

    Attributes:
        design: the physical scales used.
        num_samples: inputs the waveforms were computed for.
        num_devices: devices over all slices (each slice is its own set of programmed devices).
        devices_per_slice: edges per slice. num_capacitors: node capacitors (the widest slice).
        circuit_time: total normalised duration Σ slice durations.
        slice_durations_s: physical duration of each slice, seconds.
        settling_s: input loading margin, ``settling_time_constants`` × τ × the largest input
            capacitance (drivers charge the inputs to within e^−k of their value).
        latency_s: Σ slice durations + settling, seconds.
        energy_j: supply energy per inference, E_load + E_delivered (≥ 0), joules.
        energy_load_j, energy_delivered_j, energy_dissipated_j, energy_rail_bound_j: see the module.
        energy_balance_residual: |E_dissipated − E_delivered − ΔE_stored| relative to the
            energies involved; the discretisation error of the waveforms (small is good).
        peak_device_current_a: largest |i_e| anywhere. mean_device_current_a: mean |i_e| over time,
            devices and samples. peak_total_current_a / mean_total_current_a: Σ_e |i_e| (the rail
            current if every device draws from the supply), peak and time average.
        voltage_min_v, voltage_max_v, swing_v: node voltage extremes and their difference.
        supply_v: the rails. within_supply: every voltage inside them.
        violations: the first crossing per slice and node (at most 20), earliest first.
        num_violations: slice-node pairs whose voltage leaves the supply at some time.
        voltage_scale_to_fit_v: the largest voltage scale V₀ that keeps every node inside the
            supply (``inf``, ``null`` in JSON, if voltages never leave zero; 0 if the supply
            cannot reach both signs the voltages take).
        thermal_noise_rms_v: sqrt(kT/C) of the smallest node capacitor, volts.
        nfe: solver evaluations per slice.
    """

    design: dict[str, Any]
    num_samples: int
    num_devices: int
    devices_per_slice: list[int]
    num_capacitors: int
    circuit_time: float
    slice_durations_s: list[float]
    settling_s: float
    latency_s: float
    energy_j: float
    energy_load_j: float
    energy_delivered_j: float
    energy_dissipated_j: float
    energy_rail_bound_j: float
    energy_balance_residual: float
    peak_device_current_a: float
    mean_device_current_a: float
    peak_total_current_a: float
    mean_total_current_a: float
    voltage_min_v: float
    voltage_max_v: float
    swing_v: float
    supply_v: list[float]
    within_supply: bool
    num_violations: int
    voltage_scale_to_fit_v: float
    thermal_noise_rms_v: float
    nfe: list[int]
    violations: list[Violation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if math.isinf(out["voltage_scale_to_fit_v"]):
            out["voltage_scale_to_fit_v"] = None  # JSON has no infinity
        return out


def _integrate_power(piece: Slice, v: Tensor, weights: Tensor, tally: EnergyTally) -> None:
    """Add ∫ [`Slice.power`][kirchhoffnet.Slice.power] dt along one slice's waveform ``v`` (T, B, N), in chunks of time
    points."""
    steps, batch, width = v.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(1, batch * piece.num_edges))
    for start in range(0, steps, chunk):
        part = v[start : start + chunk]
        power = piece.power(part.reshape(-1, width)).reshaped(part.shape[0], batch)
        tally.add(power, weights[start : start + chunk], piece.num_edges)


@dataclass
class Measurement:
    """One inference's waveforms and integrals in normalised units, before any physical scale.

    Every physical quantity is a fixed multiple of these (see
    [`kirchhoffnet.hardware.units`][kirchhoffnet.hardware.units]), so one measurement serves any number of designs:
    [`report`][kirchhoffnet.hardware.analysis.Measurement.report] applies one.

    Attributes:
        circuit: the circuit measured. waves: ``(t (T,), v (T, B, N_k))`` per slice.
        tally: the per-sample (B,) integrals and current statistics. nfe: solver evaluations per slice.
    """

    circuit: Circuit
    waves: list[tuple[Tensor, Tensor]]
    tally: EnergyTally
    nfe: list[int]

    @property
    def voltage_range(self) -> tuple[float, float]:
        """Lowest and highest normalised node voltage anywhere in the waveforms."""
        return min(float(v.min()) for _, v in self.waves), max(float(v.max()) for _, v in self.waves)

    def voltage_scale_to_fit(self, supply_v: tuple[float, float]) -> float:
        """The largest V₀ that keeps every node inside ``supply_v`` (see
        [`voltage_scale_to_fit`][kirchhoffnet.hardware.supply.voltage_scale_to_fit])."""
        return voltage_scale_to_fit(self.voltage_range, supply_v)

    def report(self, design: PhysicalDesign, settling_time_constants: float = 5.0) -> HardwareReport:
        """The physical report for ``design``; see [`analyze`][kirchhoffnet.hardware.analysis.analyze]."""
        circuit, tally = self.circuit, self.tally
        found, count = violations(self.waves, circuit.times[0], design)
        v_min, v_max = self.voltage_range
        circuit_time = circuit.times[-1] - circuit.times[0]
        input_rc = float(circuit.slice(0).capacitance.max())  # the inputs' C over a unit conductance
        settling_s, latency_s = latency(circuit_time, input_rc, settling_time_constants, design)
        residual = (tally.dissipated - tally.delivered - tally.stored_drop).abs()
        scale = (tally.dissipated + tally.delivered).clamp(min=1e-30)
        pieces = slices_of(circuit)
        smallest_cap = min(float(s.capacitance.min()) for s in pieces)
        try:
            fit = self.voltage_scale_to_fit(design.supply_v)
        except ConfigError:
            fit = 0.0
        return HardwareReport(
            design=design.to_dict(),
            num_samples=int(tally.load.shape[0]),
            num_devices=sum(s.num_edges for s in pieces),
            devices_per_slice=[s.num_edges for s in pieces],
            num_capacitors=max(circuit.widths),
            circuit_time=circuit_time,
            slice_durations_s=[(b - a) * design.tau_s for a, b in zip(circuit.times, circuit.times[1:], strict=False)],
            settling_s=settling_s,
            latency_s=latency_s,
            **energies(tally, design),
            energy_balance_residual=float((residual / scale).max()),
            peak_device_current_a=tally.peak_device * design.current_a,
            mean_device_current_a=tally.device_time / circuit_time * design.current_a,
            peak_total_current_a=tally.peak_total * design.current_a,
            mean_total_current_a=float(tally.charge.mean()) / circuit_time * design.current_a,
            voltage_min_v=v_min * design.voltage_v,
            voltage_max_v=v_max * design.voltage_v,
            swing_v=(v_max - v_min) * design.voltage_v,
            supply_v=list(design.supply_v),
            within_supply=count == 0,
            num_violations=count,
            voltage_scale_to_fit_v=fit,
            thermal_noise_rms_v=math.sqrt(design.thermal_epsilon / smallest_cap) * design.voltage_v,
            nfe=list(self.nfe),
            violations=found,
        )


def measure(
    model: Model,
    x: Tensor,
    *,
    solver: Solver | str | dict[str, Any] | None = None,
    points_per_slice: int = 201,
    progress: bool = False,
) -> Measurement:
    """Run ``model`` on ``x`` and integrate its energies and currents in normalised units.

    For a [`Flow`][kirchhoffnet.Flow] the inference is sampling: ``x`` are base points z driven forward.

    Args:
        model: a Circuit, Flow or Network (a Network's digital readout is not counted).
        x: (B, d) inputs (encoded into node voltages by the circuit's encoding; energies are those of the volts).
        solver: solver settings (default the model's).
        points_per_slice: waveform samples per slice; energies are trapezoidal integrals over
            them, so their error falls as 1/points² (``energy_balance_residual`` shows it).
        progress: a bar over the slices, each counted once solved and once its energies are
            integrated (the two halves of the work on a large circuit), or, off a terminal, periodic
            lines (`kirchhoffnet._progress`).
    """
    circuit = circuit_of(model)
    dtype = next(circuit.parameters()).dtype
    steps = bar(total=2 * circuit.num_slices, desc="hw report", unit="slice step", enabled=progress, leave=False)
    with torch.no_grad(), steps:
        waves, stats = trajectory(
            circuit,
            x.to(dtype),
            solver=solver_of(model, solver),
            points_per_slice=points_per_slice,
            on_slice=lambda _: steps.update(1),
        )
        tally = EnergyTally.zeros(x.shape[0], dtype, x.device)
        previous = x.new_zeros(x.shape[0], 0, dtype=dtype)
        for k, (t, v) in enumerate(waves):
            piece = circuit.slice(k)
            cap = piece.capacitance.to(v.dtype)
            tally.load += charging_energy(previous, v[0], cap)
            tally.stored_drop += stored_energy(v[0], cap) - stored_energy(v[-1], cap)
            _integrate_power(piece, v, trapezoid_weights(t.to(v.dtype)), tally)
            previous = v[-1]
            steps.update(1)
    return Measurement(circuit, waves, tally, list(stats.nfe))


def analyze(
    model: Model,
    x: Tensor,
    design: PhysicalDesign | None = None,
    *,
    solver: Solver | str | dict[str, Any] | None = None,
    points_per_slice: int = 201,
    settling_time_constants: float = 5.0,
) -> HardwareReport:
    """Latency, energy, currents and voltages of running ``model`` on the inputs ``x``.

    ``measure(model, x).report(design)`` in one call; see [`measure`][kirchhoffnet.hardware.analysis.measure].

    Args:
        design: physical scales (default 1 pF, 1 mS, 1 V, ±1 V supply).
        settling_time_constants: input loading margin in units of the input node's RC constant.

    Shapes:
        x: (B, d).
    """
    found = measure(model, x, solver=solver, points_per_slice=points_per_slice)
    return found.report(design or PhysicalDesign(), settling_time_constants)

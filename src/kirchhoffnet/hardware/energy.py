"""One latency/energy account in physical units, for every KirchhoffNet circuit the library reports on.

The physics is [`kirchhoffnet.circuit.power`][kirchhoffnet.circuit.power]: ``Slice.power`` gives the instantaneous power
a circuit's devices dissipate and deliver, an [`EnergyTally`][kirchhoffnet.circuit.EnergyTally] integrates it over a
transient in normalised units. This module applies a [`PhysicalDesign`][kirchhoffnet.hardware.PhysicalDesign] to the
result, the same way for an inference ([`kirchhoffnet.hardware.analysis`][kirchhoffnet.hardware.analysis]) and for a
score circuit's generation (`kirchhoffnet.diffusion.circuit_run`):

* latency = (normalised duration + settling) × τ, with τ = C₀/G₀ and the settling margin
  ``settling_time_constants`` × the RC constant (normalised) of the nodes that must settle first;
* energies (batch means) × C₀V₀²: ``energy_j`` = loading + delivered (what a supply must provide at the least),
  heat alongside, and the rail bound ∫ Σ|i| dt × C₀V₀ × the supply span (every device current drawn from the
  rails; the bias currents of the transistors that realise the devices are not modelled).
"""

from __future__ import annotations

import math

from kirchhoffnet.circuit import EnergyTally
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware.units import PhysicalDesign


def latency(
    duration: float, settling_rc: float, settling_time_constants: float, design: PhysicalDesign
) -> tuple[float, float]:
    """``(settling_s, latency_s)``: a transient of normalised ``duration`` preceded by a settling margin of
    ``settling_time_constants`` × the normalised RC constant ``settling_rc``, at ``design``'s τ."""
    if not (math.isfinite(settling_time_constants) and settling_time_constants >= 0):
        raise ConfigError(f"settling_time_constants must be finite and >= 0, got {settling_time_constants}")
    settling_s = settling_time_constants * settling_rc * design.tau_s
    return settling_s, duration * design.tau_s + settling_s


def energies(tally: EnergyTally, design: PhysicalDesign) -> dict[str, float]:
    """The tally's batch-mean energies at ``design``, joules: ``energy_j`` (supply: loading + delivered),
    ``energy_load_j``, ``energy_delivered_j``, ``energy_dissipated_j``, ``energy_rail_bound_j``."""
    e = design.energy_j
    span = design.supply_v[1] - design.supply_v[0]
    return {
        "energy_j": float(tally.supply.mean()) * e,
        "energy_load_j": float(tally.load.mean()) * e,
        "energy_delivered_j": float(tally.delivered.mean()) * e,
        "energy_dissipated_j": float(tally.dissipated.mean()) * e,
        "energy_rail_bound_j": float(tally.charge.mean()) * design.capacitance_f * design.voltage_v * span,
    }

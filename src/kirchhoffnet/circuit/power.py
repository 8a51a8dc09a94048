"""The power account of a circuit: what its devices absorb at an instant, and its integral over a transient.

Every latency/energy number of a KirchhoffNet circuit (``hardware.analysis`` for a circuit's inference,
``diffusion.circuit_run`` for a score circuit's generation) is built from these pieces, in normalised units
(C₀ = G₀ = V₀ = 1; [`PhysicalDesign`][kirchhoffnet.hardware.PhysicalDesign] turns them into joules and seconds).

A device carrying the current ``i_e`` from its source to its destination absorbs ``P_e = i_e·(v_src − v_dst)``.
With ``P_e > 0`` it dissipates; with ``P_e < 0`` it *delivers* power into the circuit, which only an active
device (a transconductor fed by the supply) can do. [`Power`][kirchhoffnet.circuit.power.Power] keeps the two apart,
sample by sample, with the rail current ``Σ_e |i_e|``; [`Slice.power`][kirchhoffnet.circuit.Slice.power] computes it for
a slice's devices and [`Power.resistive`][kirchhoffnet.circuit.power.Power.resistive] for plain resistors to ground (the
score circuit's leaks).

Integrated over a transient ([`EnergyTally`][kirchhoffnet.circuit.power.EnergyTally]): the supply energy of a run is the
energy drivers put into capacitors ([`charging_energy`][kirchhoffnet.circuit.power.charging_energy]: moving a node from
``u`` to ``w`` draws ``c·w·(w − u)``, counted only when positive) plus the energy the active devices deliver; heat and
the rail-current bound are kept alongside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor


class Power(NamedTuple):
    """The instantaneous power account of a set of devices, per sample, normalised units (G₀V₀², G₀V₀).

    Attributes:
        dissipated: ``Σ_e max(P_e, 0)``, heat in the devices.
        delivered: ``Σ_e max(−P_e, 0)``, power the active devices put into the circuit.
        current: ``Σ_e |i_e|``, the rail current if every device draws its current from the supply.
        peak_current: ``max_e |i_e|``.
    """

    dissipated: Tensor
    delivered: Tensor
    current: Tensor
    peak_current: Tensor

    @classmethod
    def of_devices(cls, current: Tensor, drop: Tensor) -> Power:
        """The account of devices carrying ``current`` across the voltage ``drop`` (v_src − v_dst); the last axis
        runs over the devices. Shapes: (…, E) → (…,) each."""
        absorbed = current * drop
        magnitude = current.abs()
        return cls(
            absorbed.clamp(min=0).sum(-1),
            (-absorbed).clamp(min=0).sum(-1),
            magnitude.sum(-1),
            magnitude.amax(-1),
        )

    @classmethod
    def resistive(cls, conductance: float, v: Tensor) -> Power:
        """Resistors of ``conductance`` from each node to ground at voltages ``v`` (…, N): they only dissipate,
        ``g·v²`` each."""
        magnitude = v.abs()
        return cls(
            conductance * v.square().sum(-1),
            v.new_zeros(v.shape[:-1]),
            conductance * magnitude.sum(-1),
            conductance * magnitude.amax(-1),
        )

    def plus(self, other: Power) -> Power:
        """Two sets of devices together (``+`` on a tuple would concatenate)."""
        return Power(
            self.dissipated + other.dissipated,
            self.delivered + other.delivered,
            self.current + other.current,
            torch.maximum(self.peak_current, other.peak_current),
        )

    def reshaped(self, *shape: int) -> Power:
        """Every field viewed as ``shape`` (e.g. (T·B,) → (T, B))."""
        return Power(*(field.reshape(*shape) for field in self))


def trapezoid_weights(t: Tensor) -> Tensor:
    """Weights w with Σ_k w_k y_k = trapezoidal ∫ y dt on the grid ``t`` (T,)."""
    dt = t[1:] - t[:-1]
    w = t.new_zeros(t.shape)
    w[:-1] += dt / 2
    w[1:] += dt / 2
    return w


def integrate(values: Tensor, t: Tensor) -> Tensor:
    """Trapezoidal ∫ values dt over the first axis, on the grid ``t`` (T,). Shapes: (T, …) → (…)."""
    w = trapezoid_weights(t.to(values.dtype))
    return (w.reshape(-1, *([1] * (values.dim() - 1))) * values).sum(0)


def stored_energy(v: Tensor, capacitance: Tensor) -> Tensor:
    """½ Σ_n c_n v_n² per sample for voltages (B, N)."""
    return 0.5 * (v * v * capacitance).sum(1)


def charging_energy(before: Tensor, after: Tensor, capacitance: Tensor) -> Tensor:
    """Driver energy Σ_n c_n·max(w (w − u), 0) to move nodes from ``before`` (B, N') to ``after`` (B, N); nodes
    past N' start at 0 V."""
    u = after.new_zeros(after.shape)
    keep = min(before.shape[1], after.shape[1])
    u[:, :keep] = before[:, :keep]
    return (capacitance * (after * (after - u)).clamp(min=0)).sum(1)


@dataclass
class EnergyTally:
    """Per-sample integrals of a transient in normalised units (C₀V₀², C₀V₀), accumulated piece by piece.

    Attributes:
        load: energy drivers put into capacitors ([`charging_energy`][kirchhoffnet.circuit.power.charging_energy]).
        delivered, dissipated: ∫ `Power.delivered` dt, ∫ `Power.dissipated` dt.
        charge: ∫ Σ_e |i_e| dt, the charge through the rails if every device draws from the supply.
        stored_drop: Σ over pieces of E_stored(start) − E_stored(end) (where the capacitors are tracked).
        peak_device, peak_total: largest |i_e| and Σ_e |i_e| anywhere. device_time: ∫ mean_e,B |i_e| dt.
    """

    load: Tensor
    delivered: Tensor
    dissipated: Tensor
    charge: Tensor
    stored_drop: Tensor
    peak_device: float = 0.0
    peak_total: float = 0.0
    device_time: float = 0.0

    @classmethod
    def zeros(cls, batch: int, dtype: torch.dtype | None = None, device: torch.device | None = None) -> EnergyTally:
        """A tally of ``batch`` samples at zero."""

        def zero() -> Tensor:
            return torch.zeros(batch, dtype=dtype, device=device)

        return cls(zero(), zero(), zero(), zero(), zero())

    def add(self, power: Power, weights: Tensor | float, devices: int = 1) -> None:
        """Add ``Σ_k w_k · power_k``: ``power`` fields (T, B) with ``weights`` (T,) (a quadrature rule such as
        [`trapezoid_weights`][kirchhoffnet.circuit.power.trapezoid_weights]), or (B,) with a scalar step (the rectangle
        rule). ``devices``: how many devices the power sums over (for the mean device current)."""
        w = weights[:, None].to(power.current.dtype) if isinstance(weights, Tensor) else weights
        stepped = isinstance(weights, Tensor)

        def integral(values: Tensor) -> Tensor:
            return (w * values).sum(0) if stepped else w * values

        self.delivered += integral(power.delivered)
        self.dissipated += integral(power.dissipated)
        self.charge += integral(power.current)
        self.device_time += float(integral(power.current / devices).mean())
        self.peak_device = max(self.peak_device, float(power.peak_current.max()))
        self.peak_total = max(self.peak_total, float(power.current.max()))

    @property
    def supply(self) -> Tensor:
        """What a supply must provide at the least: loading plus the active devices' delivery (≥ 0)."""
        return self.load + self.delivered

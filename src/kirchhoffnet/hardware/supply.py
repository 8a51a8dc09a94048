"""Node voltages against the supply rails: where a design leaves them, and the voltage scale that fits.

The voltages of a normalised circuit do not depend on the voltage scale V₀, so one measured waveform tells both
where a design's nodes cross its rails ([`violations`][kirchhoffnet.hardware.supply.violations]) and the largest V₀ that
keeps them all inside ([`voltage_scale_to_fit`][kirchhoffnet.hardware.supply.voltage_scale_to_fit]); the circuit
analysis and the score circuit's generation report use both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware.units import PhysicalDesign

MAX_VIOLATIONS = 20
"""How many supply violations a report lists (the worst per slice and node, earliest first)."""


@dataclass(frozen=True)
class Violation:
    """A node voltage outside the supply: the first time it happens on a slice and node.

    Attributes:
        slice: time slice (0-based). node: node number (1-based; ground is 0).
        time_s: physical time from the start of the inference. voltage_v: the extreme voltage
        reached on that slice and node. sample: the batch row that reached it.
    """

    slice: int
    node: int
    time_s: float
    voltage_v: float
    sample: int


def violations(waves: list[tuple[Tensor, Tensor]], start: float, design: PhysicalDesign) -> tuple[list[Violation], int]:
    """The first crossing per slice and node of the waveforms ``(t (T,), v (T, B, N))`` (normalised, time from
    ``start``) outside ``design``'s supply, at most [`MAX_VIOLATIONS`][kirchhoffnet.hardware.supply.MAX_VIOLATIONS],
    earliest first; and how many there are."""
    lo, hi = (s / design.voltage_v for s in design.supply_v)
    found = []
    for k, (t, v) in enumerate(waves):
        outside = (v < lo) | (v > hi)  # (T, B, N)
        for node in outside.any(dim=(0, 1)).nonzero().flatten().tolist():
            hits = outside[:, :, node]
            first = int(hits.any(1).nonzero()[0])
            column = v[:, :, node]
            excess = torch.maximum(column - hi, lo - column)
            worst = int(excess.argmax())
            step, sample = divmod(worst, column.shape[1])
            found.append(
                Violation(
                    slice=k,
                    node=node + 1,
                    time_s=(float(t[first]) - start) * design.tau_s,
                    voltage_v=float(column[step, sample]) * design.voltage_v,
                    sample=sample,
                )
            )
    found.sort(key=lambda f: (f.time_s, f.slice, f.node))
    return found[:MAX_VIOLATIONS], len(found)


def voltage_scale_to_fit(voltage_range: tuple[float, float], supply_v: tuple[float, float]) -> float:
    """The largest V₀ that keeps normalised node voltages spanning ``voltage_range`` inside ``supply_v``
    (``inf`` if all voltages are 0).

    Raises:
        ConfigError: the voltages take a sign the supply cannot reach (e.g. negative voltages with a
            0 V … 1.8 V supply).
    """
    v_min, v_max = voltage_range
    lo, hi = supply_v
    limits = []
    if v_max > 0:
        limits.append(hi / v_max if hi > 0 else 0.0)
    if v_min < 0:
        limits.append(lo / v_min if lo < 0 else 0.0)
    scale = min(limits) if limits else math.inf
    if scale == 0.0:
        raise ConfigError(
            f"node voltages span {v_min:.3g} … {v_max:.3g} (normalised) but the supply {lo:g} V … {hi:g} V "
            "cannot reach both signs; use a supply around 0 V (e.g. --supply -1V,1V)"
        )
    return scale

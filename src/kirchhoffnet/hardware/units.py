"""Physical units: how a circuit in the paper's normalised units becomes a chip.

The core integrates ``c_n dv_n/dt = Σ_e ±i_e(v)`` with dimensionless voltages ``v``, currents
``i``, capacitances ``c`` and time ``t``. A [`PhysicalDesign`][kirchhoffnet.hardware.units.PhysicalDesign] fixes three
scales,

* ``voltage_v`` V₀: a normalised voltage of 1 is V₀ volts, ``V = V₀·v``;
* ``conductance_s`` G₀: a device whose normalised current is ``i`` carries ``I = G₀·V₀·i``
  amperes (G₀ is the current of a unit normalised device per volt of scale);
* ``capacitance_f`` C₀: a node of normalised capacitance ``c`` is a ``C₀·c`` farad capacitor;

and substituting them into KCL, ``C₀c·V₀ dv/dT = G₀V₀ Σ i``, gives the same equation in
``t = T/τ`` with the time constant ``τ = C₀/G₀``. The dynamics are therefore preserved exactly and

* time scales by τ = C₀/G₀ (seconds per unit of normalised time),
* current by G₀·V₀ (amperes per unit current), power by G₀·V₀² (watts),
* charge by C₀·V₀ (coulombs) and energy by G₀V₀²·τ = C₀·V₀² (joules): the energy of an
  inference does not depend on G₀, only on how much capacitance is swung through how many volts.

Shrinking C₀ by k makes the circuit k times faster and k times cheaper in energy at the same
voltage, while the thermal noise kT/C₀ grows k-fold (see [`kirchhoffnet.hardware.noise`][kirchhoffnet.hardware.noise]).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from kirchhoffnet.errors import ConfigError, clip, shown

BOLTZMANN_J_PER_K = 1.380649e-23
"""The Boltzmann constant k (exact in the 2019 SI)."""

PREFIXES = {
    "a": 1e-18,
    "f": 1e-15,
    "p": 1e-12,
    "n": 1e-9,
    "u": 1e-6,
    "µ": 1e-6,
    "μ": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
}
_ENGINEERING = [("a", -18), ("f", -15), ("p", -12), ("n", -9), ("µ", -6), ("m", -3), ("", 0), ("k", 3), ("M", 6)]
_QUANTITY = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s.+-]*)\s*")
_UNIT_NAMES = {"F": "capacitance", "S": "conductance", "V": "voltage", "Ohm": "resistance", "s": "time"}


def parse_quantity(text: str | float, unit: str, *, what: str | None = None, allow: tuple[str, ...] = ()) -> float:
    """A positive value in SI base units from a string such as ``1pF``, ``10fF``, ``1uS`` or ``1e-12``.

    A bare number is taken in the base unit. Prefixes: a f p n u (µ) m k M G, case-sensitive
    (``m`` is milli, ``M`` mega).

    Args:
        text: the quantity, or a number already in base units.
        unit: the expected unit symbol (``F``, ``S``, ``V``).
        what: the option's name for error messages (default the unit's quantity name).
        allow: other units accepted and converted: ``"Ohm"`` (or ``Ω``) for a conductance given
            as a resistance.

    Raises:
        ConfigError: no number, an unknown prefix, a unit other than ``unit``, or a value that is
            not finite and positive.
    """
    name = what or _UNIT_NAMES.get(unit, unit)
    value = _signed_quantity(text, unit, name, allow)
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be finite and positive, got {shown(text)}")
    return value


def _signed_quantity(text: str | float, unit: str, name: str, allow: tuple[str, ...]) -> float:
    if isinstance(text, (int, float)):
        return float(text)
    match = _QUANTITY.fullmatch(str(text))
    if match is None:
        raise ConfigError(f"{name} {shown(text)} is not a number with a unit; write it like 1{unit} or 10m{unit}")
    number, suffix = float(match.group(1)), match.group(2)
    if suffix == "":
        return number
    symbols = (unit, *allow, *(("Ω",) if "Ohm" in allow else ()))
    for symbol in sorted(symbols, key=len, reverse=True):
        if suffix.endswith(symbol):
            prefix = suffix[: len(suffix) - len(symbol)]
            if prefix not in PREFIXES:
                choices = " ".join(p for p in PREFIXES if p not in ("", "µ", "μ"))
                raise ConfigError(
                    f"{name} {shown(text)} has an unknown SI prefix {shown(prefix)}; "
                    f"use one of {choices} (e.g. 1p{unit})"
                )
            value = number * PREFIXES[prefix]
            return 1.0 / value if symbol in ("Ohm", "Ω") and value != 0 else value
    if suffix in PREFIXES:
        raise ConfigError(f"{name} {shown(text)} lacks its unit; write {clip(text)}{unit}")
    found = suffix[1:] if len(suffix) > 1 and suffix[0] in PREFIXES else suffix
    expected = " or ".join(symbols[: 1 + len(allow)])
    raise ConfigError(f"{name} {shown(text)} is in {shown(found)} but needs {expected} (e.g. 1p{unit})")


def parse_supply(text: str) -> tuple[float, float]:
    """A supply range ``lo,hi`` in volts (``-1V,1V``, ``0,1.8V``), or one value ``v`` meaning ±v."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) == 1:
        half = parse_quantity(parts[0], "V", what="supply")
        return -half, half
    if len(parts) == 2:
        lo, hi = (_signed_quantity(p, "V", "supply rail", ()) for p in parts)
        if math.isfinite(lo) and math.isfinite(hi) and lo < hi:
            return lo, hi
    raise ConfigError(f"supply {shown(text)} must be 'lo,hi' with lo < hi (e.g. -1V,1V) or one value v for ±v")


def format_quantity(value: float, unit: str, digits: int = 3) -> str:
    """``1.5e-12, "F"`` → ``"1.5 pF"``: engineering notation with an SI prefix."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    exponent = 3 * math.floor(math.log10(abs(value)) / 3)
    exponent = min(max(exponent, _ENGINEERING[0][1]), _ENGINEERING[-1][1])
    prefix = next(p for p, e in _ENGINEERING if e == exponent)
    return f"{value / 10.0**exponent:.{digits}g} {prefix}{unit}"


@dataclass(frozen=True)
class PhysicalDesign:
    """The scales that turn a normalised circuit into a physical one.

    Attributes:
        capacitance_f: C₀, farads per unit of normalised node capacitance (e.g. 1e-12).
        conductance_s: G₀, siemens: the current of a unit normalised device per volt of ``voltage_v``.
        voltage_v: V₀, volts per unit of normalised voltage.
        supply_v: (lowest, highest) rail in volts; node voltages outside it are flagged.
        temperature_k: absolute temperature for thermal noise, kelvin.
    """

    capacitance_f: float = 1e-12
    conductance_s: float = 1e-3
    voltage_v: float = 1.0
    supply_v: tuple[float, float] = (-1.0, 1.0)
    temperature_k: float = 300.0

    def __post_init__(self) -> None:
        for name in ("capacitance_f", "conductance_s", "voltage_v", "temperature_k"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite positive number, got {value!r}")
        lo, hi = (float(v) for v in self.supply_v)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(f"supply_v must be (lowest, highest) volts with lowest < highest, got {self.supply_v}")
        object.__setattr__(self, "supply_v", (lo, hi))

    @property
    def tau_s(self) -> float:
        """τ = C₀/G₀: seconds per unit of normalised time."""
        return self.capacitance_f / self.conductance_s

    @property
    def current_a(self) -> float:
        """G₀·V₀: amperes per unit of normalised current."""
        return self.conductance_s * self.voltage_v

    @property
    def power_w(self) -> float:
        """G₀·V₀²: watts per unit of normalised power."""
        return self.conductance_s * self.voltage_v**2

    @property
    def energy_j(self) -> float:
        """C₀·V₀² (= G₀V₀²·τ): joules per unit of normalised energy."""
        return self.capacitance_f * self.voltage_v**2

    @property
    def thermal_epsilon(self) -> float:
        """ε = kT/(C₀V₀²): thermal energy over the unit capacitor's C₀V₀², the normalised kT/C."""
        return BOLTZMANN_J_PER_K * self.temperature_k / self.energy_j

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "supply_v": list(self.supply_v), "tau_s": self.tau_s}

    def describe(self) -> str:
        """One line: C₀, G₀, V₀, supply and τ in engineering notation."""
        lo, hi = self.supply_v
        return (
            f"C = {format_quantity(self.capacitance_f, 'F')}, G = {format_quantity(self.conductance_s, 'S')}, "
            f"V = {format_quantity(self.voltage_v, 'V')}, supply {lo:g} V … {hi:g} V, "
            f"τ = C/G = {format_quantity(self.tau_s, 's')}, T = {self.temperature_k:g} K"
        )

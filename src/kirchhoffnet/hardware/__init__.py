"""Hardware realism: physical units, latency and energy, process variation, noise, quantization."""

from kirchhoffnet.hardware.analysis import HardwareReport, Measurement, Violation, analyze, measure
from kirchhoffnet.hardware.units import PhysicalDesign, format_quantity, parse_quantity, parse_supply

__all__ = [
    "HardwareReport",
    "Measurement",
    "PhysicalDesign",
    "Violation",
    "analyze",
    "format_quantity",
    "measure",
    "parse_quantity",
    "parse_supply",
]

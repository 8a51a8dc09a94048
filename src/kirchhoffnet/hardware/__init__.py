"""Hardware realism: a trained KirchhoffNet as a chip.

* [`units`][kirchhoffnet.hardware.units] — physical scales (C₀, G₀, V₀) that preserve the dynamics;
* [`analysis`][kirchhoffnet.hardware.analysis] — latency, energy, currents and voltage swing of an inference;
* [`energy`][kirchhoffnet.hardware.energy] — the one latency/energy account in physical units (on ``Slice.power``);
* [`supply`][kirchhoffnet.hardware.supply] — node voltages against the rails, the voltage scale that fits;
* [`variation`][kirchhoffnet.hardware.variation] — Monte-Carlo over dies, yield;
* [`noise`][kirchhoffnet.hardware.noise] — thermal (kT/C) and read noise as an SDE;
* [`quantize`][kirchhoffnet.hardware.quantize] — b-bit and lookup-table device parameters;
* `aware` — injecting all of it while training;
* [`study`][kirchhoffnet.hardware.study] — each study written as JSON, Markdown and a figure.

Task metrics come in as functions (`metrics`), so nothing here
depends on the training pipeline.
"""

from kirchhoffnet.hardware.analysis import HardwareReport, Measurement, analyze, measure
from kirchhoffnet.hardware.aware import HardwareAwareConfig, HardwareAwareTraining
from kirchhoffnet.hardware.metrics import Metric, accuracy, energy_distance, flow_nll, mse
from kirchhoffnet.hardware.noise import Noise, noisy_outputs, simulate_noisy
from kirchhoffnet.hardware.quantize import LookupTable, Uniform, quantization_sweep, quantized, straight_through
from kirchhoffnet.hardware.supply import Violation
from kirchhoffnet.hardware.units import PhysicalDesign, format_quantity, parse_quantity, parse_supply
from kirchhoffnet.hardware.variation import MonteCarloResult, Variation, monte_carlo, perturbed, sigma_sweep

__all__ = [
    "HardwareAwareConfig",
    "HardwareAwareTraining",
    "HardwareReport",
    "LookupTable",
    "Measurement",
    "Metric",
    "MonteCarloResult",
    "Noise",
    "PhysicalDesign",
    "Uniform",
    "Variation",
    "Violation",
    "accuracy",
    "analyze",
    "energy_distance",
    "flow_nll",
    "format_quantity",
    "measure",
    "monte_carlo",
    "mse",
    "noisy_outputs",
    "parse_quantity",
    "parse_supply",
    "perturbed",
    "quantization_sweep",
    "quantized",
    "sigma_sweep",
    "simulate_noisy",
    "straight_through",
]

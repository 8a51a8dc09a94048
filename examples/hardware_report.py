"""Estimate what the original two-moons flow costs as a chip, and how device variation hurts it.

A ``PhysicalDesign`` maps the normalised circuit onto farads, siemens and volts (τ = C₀/G₀); the
report gives latency, energy per inference, currents and whether the voltages stay inside the supply.
The variation curve is a Monte-Carlo over dies: each edge's parameters deviate by a relative σ and
the held-out NLL is measured on every die.

    python examples/hardware_report.py [--fast]     # → runs/examples/variation.png, hardware.json
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import kirchhoffnet as kn
from kirchhoffnet.data import sample_toy
from kirchhoffnet.hardware import PhysicalDesign, analyze, flow_nll, format_quantity, sigma_sweep
from kirchhoffnet.hardware.plots import plot_metric_vs_sigma
from kirchhoffnet.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
ORIGINAL = REPO / "data" / "original" / "twomoon"  # shipped in the repository


def main(out: Path = Path("runs/examples"), fast: bool = False) -> dict[str, float] | None:
    """Report latency/energy at 1 pF, 1 mS, 1 V and sweep σ; returns the headline numbers (None: skipped)."""
    if not (ORIGINAL / "model.pth").is_file():
        print(f"skipped: the original checkpoint is not at {ORIGINAL}")
        return None
    torch.set_num_threads(1)  # a few-node circuit runs fastest on one core; more threads only contend
    flow = kn.compat.load_original(ORIGINAL)
    design = PhysicalDesign(capacitance_f=1e-12, conductance_s=1e-3, voltage_v=1.0, supply_v=(-25.0, 25.0))
    inputs = torch.randn(16 if fast else 256, 2, generator=torch.Generator().manual_seed(0))
    report = analyze(flow, inputs, design, points_per_slice=51 if fast else 201)
    print(
        f"latency {format_quantity(report.latency_s, 's')}, energy {format_quantity(report.energy_j, 'J')} "
        f"per inference, peak device current {format_quantity(report.peak_device_current_a, 'A')}, "
        f"voltages {report.voltage_min_v:.1f}..{report.voltage_max_v:.1f} V (within supply: {report.within_supply})"
    )

    held_out = torch.as_tensor(sample_toy("twomoon", 200 if fast else 2000, seed=1), dtype=torch.float32)
    sigmas = [0.0, 0.05] if fast else [0.0, 0.01, 0.02, 0.05, 0.1]
    curve = sigma_sweep(flow, flow_nll(held_out), sigmas, kind="edge", trials=2 if fast else 20, seed=0)
    figure = plot_metric_vs_sigma({"twomoon (original)": curve}, "NLL under per-edge mismatch")
    figure.savefig(out / "variation.png")
    write_json_atomic(out / "hardware.json", {"report": report.to_dict(), "variation": [r.to_dict() for r in curve]})
    for result in curve:
        print(f"σ = {result.variation.edge:5.2f}: NLL {result.mean:.3f} nats (nominal {result.nominal:.3f})")
    return {"latency_s": report.latency_s, "energy_j": report.energy_j, "nll_at_max_sigma": curve[-1].mean}


if __name__ == "__main__":
    main(fast="--fast" in sys.argv or os.environ.get("KIRCHHOFFNET_FAST") == "1")

"""Figures of hardware studies: metric vs σ, metric vs bits, voltage and current waveforms.

Each returns a `Figure`; those of one panel draw into a caller's ``ax`` when given one.
"""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kirchhoffnet.hardware.analysis import Measurement
from kirchhoffnet.hardware.units import PhysicalDesign
from kirchhoffnet.hardware.variation import MonteCarloResult
from kirchhoffnet.io.figures import new_figure, one_axes


def _sigma(result: MonteCarloResult) -> float:
    v = result.variation
    return max(v.edge, v.die, v.capacitance)


def plot_metric_vs_sigma(curves: dict[str, list[MonteCarloResult]], title: str, ax: Axes | None = None) -> Figure:
    """Mean metric over dies with its 5–95 % band against σ (in %), one curve per model."""
    fig, ax, ours = one_axes(ax, (6.0, 4.2))
    metric = "metric"
    for label, results in curves.items():
        ordered = sorted(results, key=_sigma)
        sigma = 100 * np.array([_sigma(r) for r in ordered])
        mean = np.array([r.mean for r in ordered])
        ax.plot(sigma, mean, marker="o", label=f"{label} (mean)")
        ax.fill_between(
            sigma, [r.quantiles["0.05"] for r in ordered], [r.quantiles["0.95"] for r in ordered], alpha=0.2
        )
        if ordered:
            metric = ordered[0].metric
            ax.axhline(ordered[0].nominal, linestyle=":", color=ax.lines[-1].get_color(), linewidth=1)
    ax.set_xlabel("relative standard deviation σ (%)")
    ax.set_ylabel(f"{metric} (band: 5–95 % of dies, dotted: nominal)")
    ax.set_title(title)
    ax.legend()
    if ours:
        fig.tight_layout()
    return fig


def plot_quantization(curves: dict[str, list[dict[str, Any]]], title: str, ax: Axes | None = None) -> Figure:
    """Metric against bits per parameter, one curve per model and scheme, float value dotted."""
    fig, ax, ours = one_axes(ax, (6.0, 4.2))
    values = []
    for label, points in curves.items():
        ordered = sorted(points, key=lambda p: p["bits"])
        ax.plot([p["bits"] for p in ordered], [p["value"] for p in ordered], marker="o", label=label)
        if ordered:
            ax.axhline(ordered[0]["nominal"], linestyle=":", color=ax.lines[-1].get_color(), linewidth=1)
        values += [p["value"] for p in ordered]
    finite = [v for v in values if np.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
        ax.set_yscale("log")
    metric = next((p["metric"] for points in curves.values() for p in points), "metric")
    ax.set_xlabel("bits per device parameter")
    ax.set_ylabel(f"{metric} (dotted: float)")
    ax.set_title(title)
    ax.legend()
    if ours:
        fig.tight_layout()
    return fig


def plot_waveforms(
    measurement: Measurement,
    design: PhysicalDesign,
    title: str,
    samples: int = 4,
    nodes: int = 8,
) -> Figure:
    """Voltages of the first ``nodes`` nodes for the first ``samples`` inputs (one colour per node)
    and the total device current, against physical time."""
    circuit = measurement.circuit
    fig, (top, bottom) = new_figure((7.0, 6.0), 2, 1, sharex=True)
    scale_t = 1e9 * design.tau_s  # nanoseconds per normalised time unit
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (t, v) in enumerate(measurement.waves):
        piece = circuit.slice(k)
        time_ns = (t.numpy() - circuit.times[0]) * scale_t
        shown = min(samples, v.shape[1])
        for b in range(shown):
            for n in range(min(nodes, v.shape[2])):
                top.plot(time_ns, v[:, b, n].numpy() * design.voltage_v, color=colors[n % len(colors)], linewidth=0.8)
        with torch.no_grad():
            current = piece.currents(v[:, :shown].reshape(-1, v.shape[2])).reshape(len(t), shown, -1)
        total = current.abs().sum(2).numpy() * design.current_a * 1e3
        bottom.plot(time_ns, total, color="black", linewidth=0.8)
        if k:
            for ax in (top, bottom):
                ax.axvline(time_ns[0], color="grey", linestyle=":", linewidth=0.8)
    for rail in design.supply_v:
        top.axhline(rail, color="red", linestyle="--", linewidth=0.8)
    top.set_ylabel("node voltage (V); dashed: supply")
    bottom.set_ylabel("Σ|i| over devices (mA)")
    bottom.set_xlabel("time (ns); dotted: slice boundaries")
    top.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_noise(rows: list[dict[str, Any]], title: str) -> Figure:
    """Output deviation caused by noise against capacitance (log–log, with sqrt(kT/C)), and the
    energy distance of noisy samples to the data where known."""
    with_distance = bool(rows) and "energy_distance" in rows[0]
    fig, axes = new_figure((11.0 if with_distance else 6.0, 4.2), 1, 2 if with_distance else 1, squeeze=False)
    cap = np.array([r["capacitance_f"] for r in rows])
    ax = axes[0, 0]
    ax.loglog(cap, [r["output_rms_deviation_v"] for r in rows], marker="o", label="RMS output deviation")
    ax.loglog(cap, [r["thermal_noise_rms_v"] for r in rows], linestyle="--", label="√(kT/C)")
    ax.set_xlabel("node capacitance C₀ (F)")
    ax.set_ylabel("volts")
    ax.legend()
    if with_distance:
        ax = axes[0, 1]
        ax.semilogx(cap, [r["energy_distance"] for r in rows], marker="o", label="noisy samples")
        ax.axhline(rows[0]["energy_distance_noiseless"], linestyle=":", color="grey", label="without noise")
        ax.set_xlabel("node capacitance C₀ (F)")
        ax.set_ylabel("energy distance to held-out data")
        ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig

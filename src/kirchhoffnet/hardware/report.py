"""Writing hardware studies as JSON (for programs) and Markdown (for people), atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kirchhoffnet.hardware.analysis import HardwareReport
from kirchhoffnet.hardware.units import format_quantity
from kirchhoffnet.hardware.variation import MonteCarloResult
from kirchhoffnet.io import write_json_atomic, write_text_atomic


def write_study(out_dir: str | os.PathLike[str], stem: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """``<stem>.json`` and ``<stem>.md`` in ``out_dir``, each written atomically."""
    out = Path(out_dir)
    return write_json_atomic(out / f"{stem}.json", data), write_text_atomic(out / f"{stem}.md", markdown)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def report_markdown(report: HardwareReport, title: str) -> str:
    """The physical report as a Markdown page: design, latency, energy, currents, voltages."""
    d = report.design
    q = format_quantity
    lo, hi = report.supply_v
    rows = [
        ("node capacitance C₀", q(d["capacitance_f"], "F")),
        ("conductance scale G₀", q(d["conductance_s"], "S")),
        ("voltage scale V₀", q(d["voltage_v"], "V")),
        ("time constant τ = C₀/G₀", q(d["tau_s"], "s")),
        ("devices (all slices)", f"{report.num_devices} ({', '.join(map(str, report.devices_per_slice))} per slice)"),
        ("node capacitors", str(report.num_capacitors)),
        ("circuit time (normalised)", f"{report.circuit_time:g}"),
        ("run time Σ slice durations × τ", q(report.latency_s - report.settling_s, "s")),
        ("input settling margin", q(report.settling_s, "s")),
        ("**latency per inference**", f"**{q(report.latency_s, 's')}**"),
        ("**energy per inference**", f"**{q(report.energy_j, 'J')}**"),
        ("… input loading", q(report.energy_load_j, "J")),
        ("… delivered by active devices", q(report.energy_delivered_j, "J")),
        ("heat in the devices", q(report.energy_dissipated_j, "J")),
        ("rail-current bound", q(report.energy_rail_bound_j, "J")),
        ("energy balance residual", f"{report.energy_balance_residual:.2e}"),
        ("peak device current", q(report.peak_device_current_a, "A")),
        ("mean device current", q(report.mean_device_current_a, "A")),
        ("peak total current Σ|i|", q(report.peak_total_current_a, "A")),
        ("mean total current Σ|i|", q(report.mean_total_current_a, "A")),
        (
            "node voltages",
            f"{report.voltage_min_v:.4g} V … {report.voltage_max_v:.4g} V (swing {report.swing_v:.4g} V)",
        ),
        ("supply", f"{lo:g} V … {hi:g} V"),
        ("thermal noise √(kT/C)", q(report.thermal_noise_rms_v, "V")),
    ]
    parts = [f"# {title}", "", _table(("quantity", "value"), rows), ""]
    if report.within_supply:
        parts.append("All node voltages stay inside the supply.")
    else:
        fit = report.voltage_scale_to_fit_v
        parts.append(
            f"**{report.num_violations} slice-node pairs leave the supply.** "
            + (f"A voltage scale V₀ ≤ {q(fit, 'V')} keeps every node inside it." if fit else "")
        )
        parts += [
            "",
            _table(
                ("slice", "node", "first at", "extreme voltage", "sample"),
                [
                    (str(v.slice), str(v.node), q(v.time_s, "s"), f"{v.voltage_v:.4g} V", str(v.sample))
                    for v in report.violations
                ],
            ),
        ]
    parts += ["", f"Computed on {report.num_samples} inputs; energies and currents are means per inference.", ""]
    return "\n".join(parts)


def montecarlo_markdown(curves: dict[str, list[MonteCarloResult]], title: str) -> str:
    """One table row per model and σ: nominal, mean ± std, 5 %/95 % quantiles, yield."""
    rows = []
    for label, results in curves.items():
        for r in results:
            v = r.variation
            sigma = ", ".join(f"{k} {getattr(v, k):g}" for k in ("edge", "die", "capacitance") if getattr(v, k) > 0)
            rows.append(
                (
                    label,
                    sigma or "none",
                    f"{r.nominal:.4g}",
                    f"{r.mean:.4g} ± {r.std:.2g}",
                    f"{r.quantiles['0.05']:.4g}",
                    f"{r.quantiles['0.95']:.4g}",
                    "–" if r.yield_fraction is None else f"{100 * r.yield_fraction:.1f} %",
                    str(len(r.values)),
                    str(r.failed),
                )
            )
    metric = next((r.metric for results in curves.values() for r in results), "metric")
    header = ("model", "σ", f"nominal {metric}", "mean ± std", "5 %", "95 %", "yield", "dies", "failed")
    return "\n".join([f"# {title}", "", _table(header, rows), ""])


def quantization_markdown(curves: dict[str, list[dict[str, Any]]], title: str) -> str:
    """One table row per model, scheme and bit count."""
    rows = [
        (label, p["scheme"], str(p["bits"]), f"{p['value']:.4g}", f"{p['nominal']:.4g}", f"{p['param_rms_error']:.3g}")
        for label, points in curves.items()
        for p in points
    ]
    header = ("model", "scheme", "bits", "metric", "float", "RMS parameter error")
    return "\n".join([f"# {title}", "", _table(header, rows), ""])


def noise_markdown(rows: list[dict[str, Any]], title: str) -> str:
    """One table row per design: capacitance, √(kT/C), RMS output deviation, energy distances."""
    q = format_quantity
    header = ["C₀", "√(kT/C)", "RMS output deviation"]
    distance = bool(rows) and "energy_distance" in rows[0]
    if distance:
        header += ["energy distance (noisy)", "energy distance (noiseless)"]
    table = []
    for r in rows:
        row = [q(r["capacitance_f"], "F"), q(r["thermal_noise_rms_v"], "V"), q(r["output_rms_deviation_v"], "V")]
        if distance:
            row += [f"{r['energy_distance']:.4g}", f"{r['energy_distance_noiseless']:.4g}"]
        table.append(row)
    return "\n".join([f"# {title}", "", _table(header, table), ""])

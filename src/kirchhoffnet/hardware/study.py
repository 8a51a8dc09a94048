"""The hardware studies as files: each call measures, writes ``<stem>.json`` (for programs) and
``<stem>.md`` (for people) and draws the figure, so a script gets what ``kirchhoffnet hw`` writes.

Every study takes models with their metric or inputs already chosen: which metric a saved model
is scored on depends on how it was trained, which is for the layers that know runs and tasks
([`kirchhoffnet.training.hw`][kirchhoffnet.training.hw]); here only the hardware is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from torch import Tensor

from kirchhoffnet.hardware.analysis import Model, measure
from kirchhoffnet.hardware.metrics import Metric
from kirchhoffnet.hardware.noise import Noise, noise_sweep
from kirchhoffnet.hardware.plots import plot_metric_vs_sigma, plot_noise, plot_quantization, plot_waveforms
from kirchhoffnet.hardware.quantize import quantization_sweep
from kirchhoffnet.hardware.report import (
    montecarlo_markdown,
    noise_markdown,
    quantization_markdown,
    report_markdown,
    write_study,
)
from kirchhoffnet.hardware.units import PhysicalDesign
from kirchhoffnet.hardware.variation import MonteCarloResult, sigma_sweep
from kirchhoffnet.io.figures import save_figure

R = TypeVar("R")

REPORT_SUMMARY = ("latency_s", "energy_j", "peak_total_current_a", "swing_v", "within_supply")
"""The keys of a report's data that `Study.summary` holds: what a reader checks first."""


@dataclass(frozen=True)
class Study(Generic[R]):
    """What a study computed and the files it wrote.

    Attributes:
        result: the study's numbers (a report's JSON data, the curves, the rows).
        files: the JSON, the Markdown, then the figure if one was drawn.
        summary: a report's headline numbers (empty for the sweeps), printed as one JSON line.
    """

    result: R
    files: tuple[Path, ...]
    summary: dict[str, Any] = field(default_factory=dict)


def report_study(
    model: Model,
    inputs: Tensor,
    design: PhysicalDesign,
    out: str | os.PathLike[str],
    *,
    name: str,
    source: str,
    settling: float = 5.0,
    fit_voltage: bool = False,
    points_per_slice: int = 201,
    progress: bool = False,
) -> Study[dict[str, Any]]:
    """Latency, energy, currents and swing of ``model`` on ``inputs`` at ``design``: ``hw_report.json``,
    ``hw_report.md`` and ``waveforms.png`` in ``out``.

    ``fit_voltage`` replaces the design's V₀ by the largest that keeps every node inside its supply
    (the normalised waveforms do not depend on V₀, so one measurement serves). ``name`` titles the
    page and the figure; ``source`` is recorded in the JSON so the numbers name their model.
    ``progress``: see [`measure`][kirchhoffnet.hardware.analysis.measure].
    """
    out = Path(out)
    found = measure(model, inputs, points_per_slice=points_per_slice, progress=progress)
    if fit_voltage:
        design = replace(design, voltage_v=found.voltage_scale_to_fit(design.supply_v))
    result = found.report(design, settling)
    data = {"source": source, **result.to_dict()}
    markdown = report_markdown(result, f"Hardware report: {name}") + design.describe() + "\n"
    json_path, md_path = write_study(out, "hw_report", data, markdown)
    figure = out / "waveforms.png"
    save_figure(plot_waveforms(found, design, f"{name}\n{design.describe()}"), figure)
    return Study(data, (json_path, md_path, figure), {k: data[k] for k in REPORT_SUMMARY})


def montecarlo_study(
    models: Sequence[tuple[str, Model, Metric]],
    sigmas: Sequence[float],
    out: str | os.PathLike[str],
    *,
    kind: str = "edge",
    trials: int = 100,
    threshold: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Study[dict[str, list[MonteCarloResult]]]:
    """[`sigma_sweep`][kirchhoffnet.hardware.sigma_sweep] of each ``(label, model, metric)``, one curve per
    label: ``montecarlo.json``, ``montecarlo.md`` and ``montecarlo.png`` in ``out``.

    Every model sees the same seed, so the curves compare the models and not their dies.
    """
    out = Path(out)
    setting = f"{kind} variation, {trials} dies per σ"
    curves = {
        label: sigma_sweep(
            model, metric, sigmas, kind=kind, trials=trials, seed=seed, threshold=threshold, progress=progress
        )
        for label, model, metric in models
    }
    data = {"kind": kind, "curves": {label: [r.to_dict() for r in results] for label, results in curves.items()}}
    json_path, md_path = write_study(
        out, "montecarlo", data, montecarlo_markdown(curves, f"Monte-Carlo over dies: {setting}")
    )
    figure = out / "montecarlo.png"
    save_figure(plot_metric_vs_sigma(curves, setting), figure)
    return Study(curves, (json_path, md_path, figure))


def quantization_study(
    models: Sequence[tuple[str, Model, Metric]],
    bits: Sequence[int],
    schemes: Sequence[str],
    out: str | os.PathLike[str],
    progress: bool = False,
) -> Study[dict[str, list[dict[str, Any]]]]:
    """[`quantization_sweep`][kirchhoffnet.hardware.quantization_sweep] of each ``(label, model, metric)`` under each
    scheme, one curve per ``"<label> <scheme>"``: ``quantization.json``, ``quantization.md`` and
    ``quantization.png`` in ``out``."""
    out = Path(out)
    curves = {
        f"{label} {scheme}": quantization_sweep(model, metric, bits, scheme, progress)
        for label, model, metric in models
        for scheme in schemes
    }
    json_path, md_path = write_study(
        out, "quantization", {"curves": curves}, quantization_markdown(curves, "Quantization of device parameters")
    )
    figure = out / "quantization.png"
    save_figure(plot_quantization(curves, "metric vs bits per device parameter"), figure)
    return Study(curves, (json_path, md_path, figure))


def noise_study(
    model: Model,
    inputs: Tensor,
    capacitances: Sequence[float],
    base: PhysicalDesign,
    noise: Noise,
    out: str | os.PathLike[str],
    *,
    name: str,
    source: str,
    reference: Tensor | None = None,
    dt: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> Study[list[dict[str, Any]]]:
    """[`noise_sweep`][kirchhoffnet.hardware.noise.noise_sweep] over ``base`` at each capacitance (smallest
    first): ``noise.json``, ``noise.md`` and ``noise.png`` in ``out``.

    Thermal noise grows as kT/C, so the capacitance is the design choice the table answers;
    ``reference`` samples of the target add each design's energy distance (flows).
    """
    out = Path(out)
    designs = [replace(base, capacitance_f=c) for c in sorted(capacitances)]
    rows = noise_sweep(model, inputs, designs, noise, reference=reference, dt=dt, seed=seed, progress=progress)
    title = f"Noise in {name}: T = {base.temperature_k:g} K, γ = {noise.excess_factor:g}, read noise {noise.read:g}"
    json_path, md_path = write_study(out, "noise", {"source": source, "rows": rows}, noise_markdown(rows, title))
    figure = out / "noise.png"
    save_figure(plot_noise(rows, title), figure)
    return Study(rows, (json_path, md_path, figure))

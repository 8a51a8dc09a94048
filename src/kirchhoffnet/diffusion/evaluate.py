"""Evaluation of a diffusion run: the KL of every solver against the data, the KL-vs-programming-noise
curve over several chips (with and without write-verify), and that curve compared across runs.

Results go into the run directory: ``evaluation.json``, ``samples.png``, ``robustness.png`` and
``speed_energy.txt``/``.json``; an unconditional KirchhoffNet score-circuit run is scored by `circuit_run`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from torch import Tensor

from kirchhoffnet._textfile import read_json_mapping, require_types
from kirchhoffnet.config.diffusion import EvaluateConfig
from kirchhoffnet.diffusion import plots
from kirchhoffnet.diffusion.circuit_run import evaluate_circuit, run_hardware
from kirchhoffnet.diffusion.conditional import evaluate_conditional
from kirchhoffnet.diffusion.metrics import kl_or_none, kl_pooled, kl_report
from kirchhoffnet.diffusion.run import RUN_METRICS, Run, load_run, reference_points
from kirchhoffnet.diffusion.samplers import DIGITAL_SOLVERS, solver_names
from kirchhoffnet.diffusion.sampling import check_read_noise, check_tolerance, sample_run, speed_energy
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
from kirchhoffnet.errors import CheckpointError, ConfigError
from kirchhoffnet.io import write_json_atomic
from kirchhoffnet.io.figures import save_figure


def evaluate(
    run_dir: str | os.PathLike[str],
    progress: bool = True,
    robustness_only: bool = False,
    verify_tolerance: float | None = None,
    read_noise: float | None = None,
) -> dict[str, Any]:
    """Evaluate a run and write ``evaluation.json``, the figures and ``speed_energy.txt`` into it.

    Ring: KL of every solver, the KL-vs-programming-noise curve over several chips, samples vs ring.
    Latent: judge accuracy and latent KL per class for every solver, the guidance sweep, image grids.

    Args:
        robustness_only: ring runs: only (re)compute the KL-vs-σ curves, keeping the rest of evaluation.json.
        verify_tolerance: overrides ``evaluate.verify_tolerance`` (the write-verified curve's tolerance).
        read_noise: overrides ``rram.read_noise`` (every chip's reads, so the analog solvers' samples).
    """
    run = load_run(run_dir)
    if read_noise is not None and "analog" not in run.model.integrators:
        raise ConfigError(f"{run.path} holds a {run.model.backend} score model: --read-noise acts on RRAM chips")
    if "transient" in run.model.integrators and run.config.unconditional:  # a circuit: its transient's metrics
        return evaluate_circuit(run, cast(CircuitScoreModel, run.model), progress)
    if read_noise is not None:
        device = run.config.rram.model_copy(update={"read_noise": check_read_noise(read_noise)})
        run = replace(run, config=run.config.model_copy(update={"rram": device}))
    if verify_tolerance is not None:
        check_tolerance(verify_tolerance)
        evaluate_config = run.config.evaluate.model_copy(update={"verify_tolerance": verify_tolerance})
        run = replace(run, config=run.config.model_copy(update={"evaluate": evaluate_config}))
    if run.config.data == "latent":
        if robustness_only or verify_tolerance is not None:
            raise ConfigError(f"{run.path} is a latent run: the robustness curve and its options are for ring runs")
        return _evaluate_latent(run, progress)
    return _evaluate_ring(run, progress, robustness_only)


def _evaluate_latent(run: Run, progress: bool) -> dict[str, Any]:
    """The conditional evaluation with every solver of the run's model; a score circuit adds its hardware view."""
    config = run.config

    def sampler(n: int, solver: str, labels: Tensor, guidance: float) -> Tensor:
        return sample_run(run, n, solver, seed=config.seed, labels=labels, guidance=guidance)[0]

    solvers = solver_names(run.model)
    metrics = {"data": "latent", **evaluate_conditional(run.path, config, sampler, solvers, progress)}
    if "transient" in run.model.integrators:
        metrics["model"] = "kirchhoffnet"
        metrics["hardware"] = run_hardware(run)
    write_json_atomic(run.path / RUN_METRICS, metrics)
    return metrics


def _evaluate_ring(run: Run, progress: bool, robustness_only: bool) -> dict[str, Any]:
    config, ev = run.config, run.config.evaluate
    n = ev.num_samples
    reference = reference_points(config)
    metrics: dict[str, Any] = {"data": config.data, "num_samples": n}
    if robustness_only and (run.path / RUN_METRICS).is_file():
        metrics = read_json_mapping(
            run.path / RUN_METRICS, error=CheckpointError, label="metrics file", rewrite=_REWRITE
        )
    if not robustness_only:
        metrics |= _ring_solvers(run, reference, progress)
    curves = {run.path.name: _robustness(run, reference, None, progress)}
    metrics["robustness"] = _curve_json(ev, curves[run.path.name])
    metrics.pop("robustness_write_verify", None)
    if ev.verify_tolerance is not None:
        name = f"{run.path.name}, write-verify ±{ev.verify_tolerance:g}"
        curves[name] = _robustness(run, reference, ev.verify_tolerance, progress)
        metrics["robustness_write_verify"] = {"verify_tolerance": ev.verify_tolerance, **_curve_json(ev, curves[name])}
    save_figure(
        plots.kl_vs_noise({k: (ev.prog_noise_levels, v) for k, v in curves.items()}), run.path / "robustness.png"
    )
    write_json_atomic(run.path / RUN_METRICS, metrics)
    return metrics


def _ring_solvers(run: Run, reference: Tensor, progress: bool) -> dict[str, Any]:
    """KL of every solver (configured and exact sharpening), the sample panels, the speed/energy report."""
    config, n = run.config, len(reference)
    floor = reference_points(config, "floor")
    metrics: dict[str, Any] = {"noise_floor": kl_report(floor, reference)}
    panels = {f"{config.data} (reference)": reference.numpy()}
    for solver in solver_names(run.model):
        x, info = sample_run(run, n, solver, seed=config.seed)
        metrics[solver] = {**kl_report(x, reference), **info}
        panels[solver] = x.numpy()
        if progress:
            print(f"{solver:10s} KL pooled {metrics[solver]['kl_pooled']} ({info['wall_time_s']:.1f} s)", flush=True)
    for solver in DIGITAL_SOLVERS:
        x, info = sample_run(run, n, solver, seed=config.seed, exact=True)
        metrics[f"{solver} (exact)"] = {**kl_report(x, reference), **info}
        if progress:
            print(f"{solver + ' (exact)':18s} KL pooled {metrics[solver + ' (exact)']['kl_pooled']}", flush=True)
    save_figure(plots.sample_panels(panels), run.path / "samples.png")
    metrics["speed_energy"] = speed_energy(
        run, metrics["euler"]["wall_time_s"], n, metrics["analog"]["mean_crossbar_power_w"]
    )
    return metrics


def _robustness(
    run: Run, reference: Tensor, verify_tolerance: float | None, progress: bool
) -> list[list[float | None]]:
    """KL pooled per chip at each programming-noise level of ``evaluate.prog_noise_levels``."""
    config, ev = run.config, run.config.evaluate
    per_level: list[list[float | None]] = []
    for sigma in ev.prog_noise_levels:
        chips = ev.chips if config.rram.model_copy(update={"prog_noise": sigma}).programs_randomly else 1
        kls = [
            kl_or_none(
                kl_pooled,
                sample_run(
                    run,
                    ev.num_samples,
                    ev.robustness_solver,
                    sigma,
                    config.seed,
                    c,
                    ev.robustness_steps,
                    verify_tolerance=verify_tolerance,
                )[0],
                reference,
            )
            for c in range(chips)
        ]
        per_level.append(kls * (ev.chips // chips))  # without programming randomness every seed is the same chip
        if progress:
            verify = "" if verify_tolerance is None else f" (write-verify ±{verify_tolerance:g})"
            print(f"σ = {sigma:<5g} KL pooled per chip{verify} {per_level[-1]}", flush=True)
    return per_level


def _curve_json(ev: EvaluateConfig, per_level: list[list[float | None]]) -> dict[str, Any]:
    return {
        "solver": ev.robustness_solver,
        "steps": ev.robustness_steps,
        "curve": [
            {"prog_noise": sigma, "kl_pooled_per_chip": kls, "kl_pooled_mean": _mean_or_none(kls)}
            for sigma, kls in zip(ev.prog_noise_levels, per_level, strict=True)
        ],
    }


_REWRITE = "was it cut short or edited by hand? `kirchhoffnet diffusion evaluate RUN_DIR` writes it again"
_NUMBER, _OPTIONAL_NUMBER = (int, float), (int, float, type(None))


def _robustness_curve(metrics: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    """``metrics[key]`` as `_curve_json` wrote it, or a one-line error naming the file."""
    curve = metrics[key]
    where = f"{path} ({key})"
    if not isinstance(curve, dict):
        raise CheckpointError(f"{where} must be an object, got {type(curve).__name__}; {_REWRITE}")
    types: dict[str, type | tuple[type, ...]] = {"curve": list}
    require_types(
        curve, types | ({"verify_tolerance": _NUMBER} if key != "robustness" else {}), where, CheckpointError, _REWRITE
    )
    for point in curve["curve"]:
        if not isinstance(point, dict):
            raise CheckpointError(f"{where}: a curve point must be an object, got {type(point).__name__}; {_REWRITE}")
        require_types(
            point,
            {"prog_noise": _NUMBER, "kl_pooled_per_chip": list, "kl_pooled_mean": _OPTIONAL_NUMBER},
            where,
            CheckpointError,
            _REWRITE,
        )
        if not all(isinstance(k, _OPTIONAL_NUMBER) and not isinstance(k, bool) for k in point["kl_pooled_per_chip"]):
            raise CheckpointError(f"{where}: kl_pooled_per_chip must hold numbers or null; {_REWRITE}")
    return curve


def _mean_or_none(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if len(finite) == len(values) else None


def compare_robustness(run_dirs: list[Path], out: str | os.PathLike[str]) -> dict[str, Any]:
    """One KL-vs-programming-noise figure for several evaluated runs (e.g. plain and noise-aware)."""
    curves, table = {}, {}
    for run_dir in run_dirs:
        path = Path(run_dir) / RUN_METRICS
        if not path.is_file():
            raise CheckpointError(f"{path} does not exist; run `kirchhoffnet diffusion evaluate {run_dir}` first")
        metrics = read_json_mapping(path, error=CheckpointError, label="metrics file", rewrite=_REWRITE)
        if metrics.get("robustness") is None:
            raise CheckpointError(f"{path} has no robustness curve (only ring runs have one)")
        named = {Path(run_dir).name: _robustness_curve(metrics, "robustness", path)}
        if metrics.get("robustness_write_verify") is not None:
            verified = _robustness_curve(metrics, "robustness_write_verify", path)
            named[f"{Path(run_dir).name}, write-verify ±{verified['verify_tolerance']:g}"] = verified
        for name, curve in named.items():
            points = curve["curve"]
            curves[name] = ([p["prog_noise"] for p in points], [p["kl_pooled_per_chip"] for p in points])
            table[name] = {str(p["prog_noise"]): p["kl_pooled_mean"] for p in points}
    save_figure(plots.kl_vs_noise(curves), out)
    return table

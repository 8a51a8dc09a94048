"""``kirchhoffnet hw``: what a trained model costs and how it degrades as a chip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kirchhoffnet.cli.common import fail, parse_choice, parse_list
from kirchhoffnet.errors import ConfigError, KirchhoffError, clip

app = typer.Typer(
    help=(
        "Hardware realism of a trained model: latency and energy at a physical capacitance and conductance, "
        "Monte-Carlo process variation, quantization and thermal noise."
    ),
    no_args_is_help=True,
)

ModelPath = Annotated[
    Path,
    typer.Argument(help="A run directory of `kirchhoffnet train`, a .safetensors checkpoint, or an original result."),
]
ModelPaths = Annotated[
    list[Path],
    typer.Argument(help="One or more models (checkpoints, run directories, original results); one curve each."),
]
Capacitance = Annotated[str, typer.Option(help="Node capacitance C₀ per unit normalised capacitance: 1pF, 10fF, ...")]
Conductance = Annotated[
    str, typer.Option(help="Conductance scale G₀, the current of a unit device per volt: 1mS, 100uS, or 1kOhm.")
]
Voltage = Annotated[
    str,
    typer.Option(help="Voltage scale V₀ per normalised volt (1V, 50mV), or 'fit' for the largest that fits --supply."),
]
Supply = Annotated[str, typer.Option(help="Supply rails 'lo,hi' (-1V,1V or 0,1.8V) or one value v for ±v.")]
Temperature = Annotated[float, typer.Option(min=0.0, help="Temperature in kelvin (thermal noise).")]
Out = Annotated[Path, typer.Option(help="Directory for the JSON, Markdown and PNG results.")]
Seed = Annotated[int, typer.Option(help="Seed of the inputs, the held-out data and the random dies.")]
Points = Annotated[
    int,
    typer.Option(min=2, help="Held-out examples the metric is computed on (a run directory: its first N test ones)."),
]
Dataset = Annotated[
    str | None, typer.Option(help="2-D data set of a flow whose config does not name it (twomoon, 8gaussians, ...).")
]
Inputs = Annotated[
    Path | None,
    typer.Option(help="A .npy (N, d) array of inputs; default: a run's test inputs, or a flow's normal base samples."),
]


def _label(path: Path, taken: set[str]) -> str:
    name = path.stem if path.is_file() else path.resolve().name
    label, k = name, 2
    while label in taken:
        label, k = f"{name}-{k}", k + 1
    taken.add(label)
    return label


def _dataset(path: Path, override: str | None) -> str | None:
    """The 2-D data set of a flow: ``--dataset``, the original config's test_bench, the checkpoint's
    metadata (``dataset``), or a run directory's config.yaml (``data.name`` of a flow2d task)."""
    from kirchhoffnet.checkpoint import RUN_MODEL
    from kirchhoffnet.compat import is_original_result, read_config
    from kirchhoffnet.io import read_tensors

    if override is not None:
        return override
    if is_original_result(path):
        bench = read_config(path).get("test_bench")
        return str(bench) if bench else None
    checkpoint = path if path.is_file() else path / RUN_MODEL
    if not checkpoint.is_file():
        return None
    metadata = read_tensors(checkpoint)[2]
    for key in ("dataset", "test_bench"):
        if isinstance(metadata.get(key), str):
            return str(metadata[key])
    config_file = checkpoint.parent / "config.yaml"
    if config_file.is_file():
        from kirchhoffnet.yamlfile import read_yaml_mapping

        config = read_yaml_mapping(config_file, label="run config", empty={})
        data = config.get("data")
        if config.get("task") == "flow2d" and isinstance(data, dict) and isinstance(data.get("name"), str):
            return str(data["name"])
    return None


def _load(path: Path) -> tuple[Any, Any]:
    """The model at ``path`` and, for a run directory of ``kirchhoffnet train``, its prepared task
    (whose held-out data the metric and the default inputs come from); else ``None``."""
    from kirchhoffnet.checkpoint import load_model
    from kirchhoffnet.training import is_run_dir, open_run

    if is_run_dir(path):
        _, task, model = open_run(path)
        return model, task
    return load_model(path), None


def _with_metrics(paths: list[Path], dataset: str | None, points: int, seed: int) -> list[tuple[str, Any, Any]]:
    """``(label, model, metric)`` for each path: labels are the names, made unique."""
    found: list[tuple[str, Any, Any]] = []
    taken: set[str] = set()
    for path in paths:
        model, task = _load(path)
        metric = _task_metric(task, points) if task is not None else _metric(path, model, dataset, points, seed)
        found.append((_label(path, taken), model, metric))
    return found


def _task_metric(task: Any, points: int) -> Any:
    """The run's own test metric on the first ``points`` examples of its test set: accuracy of a
    classifier, held-out NLL of a 2-D flow, MSE of a regression."""
    from kirchhoffnet.hardware import accuracy, flow_nll, mse

    x, y = task.test_data()
    x, batch = x[:points], task.eval_batch
    if task.primary == "nll_nats":
        return flow_nll(x, batch)
    if task.primary == "accuracy" and y is not None:
        return accuracy(x, y[:points], batch)
    if task.primary == "mse" and y is not None:
        return mse(x, y[:points].reshape(len(x), -1), batch)
    raise ConfigError(
        f"the hw commands measure accuracy, held-out NLL or MSE; a {task.run_config.task} run reports "
        f"{task.primary} (use kirchhoffnet.hardware with your own Metric from Python)"
    )


def _metric(path: Path, model: Any, dataset: str | None, points: int, seed: int) -> Any:
    """The metric of a checkpoint or original result: held-out NLL of a 2-D flow; a clear error otherwise."""
    import torch

    from kirchhoffnet.data import TOY_SETS, sample_toy
    from kirchhoffnet.hardware import flow_nll
    from kirchhoffnet.models import Flow

    name = _dataset(path, dataset)
    if not isinstance(model, Flow) or model.dim != 2 or name is None:
        raise ConfigError(
            f"cannot tell which metric to use for {path}: outside run directories of `kirchhoffnet train` (whose "
            "test set is known), the hw commands measure the held-out NLL of 2-D flows whose data set is known "
            "(original config test_bench, checkpoint metadata 'dataset', or --dataset)"
        )
    name = parse_choice(name, TOY_SETS, "dataset", "a 2-D data set")
    held_out = torch.from_numpy(sample_toy(name, points, seed=seed + 1))  # seed + 1: as `kirchhoffnet eval`
    return flow_nll(held_out)


def _inputs(model: Any, task: Any, inputs: Path | None, samples: int, seed: int) -> Any:
    """What the circuit is run on: ``--inputs``, a run's test inputs (classifier, regression), or a
    flow's standard normal base samples."""
    import numpy as np
    import torch

    from kirchhoffnet.models import Flow

    if inputs is not None:
        try:
            array = np.load(inputs, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # EOFError: a truncated .npy
            raise ConfigError(f"--inputs {inputs} is not a readable .npy array: {clip(str(exc), 200)}") from None
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
            raise ConfigError(f"--inputs {inputs} must hold a (N, d) float array, got {array.dtype} {array.shape}")
        return torch.from_numpy(array[:samples].copy())
    if task is not None and not isinstance(model, Flow):
        return task.test_data()[0][:samples]
    if isinstance(model, Flow):
        return torch.randn(samples, model.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    raise ConfigError(f"a {type(model).__name__} has no default inputs; pass --inputs FILE.npy with (N, d) inputs")


def _design(capacitance: str, conductance: str, voltage: str, supply: str, temperature: float) -> Any:
    from kirchhoffnet.hardware import PhysicalDesign, parse_quantity, parse_supply

    return PhysicalDesign(
        capacitance_f=parse_quantity(capacitance, "F", what="--capacitance"),
        conductance_s=parse_quantity(conductance, "S", what="--conductance", allow=("Ohm",)),
        voltage_v=1.0 if voltage == "fit" else parse_quantity(voltage, "V", what="--voltage"),
        supply_v=parse_supply(supply),
        temperature_k=temperature,
    )


def _check_numbers(**options: tuple[float | None, float | None, float | None, bool]) -> None:
    """Every float option finite and in range, before any work: ``--threshold nan`` would otherwise
    run every die and lose the results at the JSON write. Each value is ``(value, low, high, open_low)``;
    a value of None (an option not given) is skipped."""
    from kirchhoffnet.finite import finite_number

    for name, (value, low, high, open_low) in options.items():
        if value is not None:
            finite_number(f"--{name}", value, low=low, high=high, open_low=open_low)


@app.command()
def report(
    path: ModelPath,
    capacitance: Capacitance = "1pF",
    conductance: Conductance = "1mS",
    voltage: Voltage = "1V",
    supply: Supply = "-1V,1V",
    temperature: Temperature = 300.0,
    samples: Annotated[int, typer.Option(min=1, help="Inputs whose inferences are measured and averaged.")] = 256,
    inputs: Inputs = None,
    points_per_slice: Annotated[int, typer.Option(min=3, help="Waveform samples per slice (energy integrals).")] = 201,
    settling: Annotated[float, typer.Option(min=0.0, help="Input loading margin in time constants τ.")] = 5.0,
    seed: Seed = 0,
    out: Out = Path("runs/hw"),
) -> None:
    """Latency, energy per inference, currents and voltage swing at a physical design.

    Writes hw_report.json, hw_report.md and waveforms.png. A KirchhoffNet score-circuit run of `kirchhoffnet
    diffusion train` is reported per generation (its probability-flow transient, over --samples generations).
    """
    from dataclasses import replace

    from kirchhoffnet.diffusion.run import is_diffusion_run
    from kirchhoffnet.hardware import measure
    from kirchhoffnet.hardware.plots import plot_waveforms
    from kirchhoffnet.hardware.report import report_markdown, write_study
    from kirchhoffnet.io.paths import check_out_dir

    try:
        _check_numbers(temperature=(temperature, 0.0, None, False), settling=(settling, 0.0, None, False))
        check_out_dir(out)
        design = _design(capacitance, conductance, voltage, supply, temperature)
        if is_diffusion_run(path):
            _generation_report(path, design, samples, settling, voltage == "fit", out)
            return
        model, task = _load(path)
        found = measure(model, _inputs(model, task, inputs, samples, seed), points_per_slice=points_per_slice)
        if voltage == "fit":
            design = replace(design, voltage_v=found.voltage_scale_to_fit(design.supply_v))
        result = found.report(design, settling)
        title = f"Hardware report: {path.name}"
        data = {"source": str(path.resolve()), **result.to_dict()}
        json_path, md_path = write_study(
            out, "hw_report", data, report_markdown(result, title) + design.describe() + "\n"
        )
        plot_waveforms(found, design, out / "waveforms.png", f"{path.name}\n{design.describe()}")
    except KirchhoffError as exc:
        fail(exc)
    summary = {k: data[k] for k in ("latency_s", "energy_j", "peak_total_current_a", "swing_v", "within_supply")}
    typer.echo(json.dumps(summary))
    typer.echo(f"wrote {json_path}, {md_path} and {out / 'waveforms.png'}")


def _generation_report(path: Path, design: Any, samples: int, settling: float, fit: bool, out: Path) -> None:
    from kirchhoffnet.diffusion.circuit_run import hardware_markdown, run_hardware
    from kirchhoffnet.diffusion.run import load_run
    from kirchhoffnet.hardware.report import write_study

    result = run_hardware(load_run(path), samples, design, settling, fit_supply=fit)
    data = {"source": str(path.resolve()), **result}
    json_path, md_path = write_study(out, "hw_report", data, hardware_markdown(result, f"Hardware report: {path.name}"))
    summary = {k: data[k] for k in ("latency_s", "energy_j", "peak_node_voltage_v", "within_supply")}
    typer.echo(json.dumps(summary))
    typer.echo(f"wrote {json_path} and {md_path}")


@app.command()
def montecarlo(
    paths: ModelPaths,
    sigma: Annotated[str, typer.Option(help="Relative standard deviations, comma-separated.")] = "0.01,0.02,0.05,0.1",
    kind: Annotated[
        str, typer.Option(help="What varies: edge (per device), die (global shift), capacitance, all.")
    ] = "edge",
    trials: Annotated[int, typer.Option(min=1, help="Random dies per σ.")] = 100,
    threshold: Annotated[float | None, typer.Option(help="Pass mark of the metric for the yield.")] = None,
    points: Points = 1000,
    dataset: Dataset = None,
    seed: Seed = 0,
    out: Out = Path("runs/hw"),
) -> None:
    """Metric distribution over random dies at each σ: montecarlo.json/.md and montecarlo.png (one curve per model)."""
    from kirchhoffnet.hardware import sigma_sweep
    from kirchhoffnet.hardware.plots import plot_metric_vs_sigma
    from kirchhoffnet.hardware.report import montecarlo_markdown, write_study
    from kirchhoffnet.hardware.variation import KINDS
    from kirchhoffnet.io.paths import check_out_dir

    setting = f"{kind} variation, {trials} dies per σ"
    try:
        _check_numbers(threshold=(threshold, None, None, False))
        check_out_dir(out)
        sigmas = parse_list(sigma, float, "sigma")
        for value in sigmas:
            _check_numbers(sigma=(value, 0.0, 1.0, False))
        parse_choice(kind, KINDS, "kind", "a variation kind")
        curves = {
            label: sigma_sweep(
                model, metric, sigmas, kind=kind, trials=trials, seed=seed, threshold=threshold, progress=True
            )
            for label, model, metric in _with_metrics(paths, dataset, points, seed)
        }
        data = {"kind": kind, "curves": {label: [r.to_dict() for r in results] for label, results in curves.items()}}
        markdown = montecarlo_markdown(curves, f"Monte-Carlo over dies: {setting}")
        json_path, md_path = write_study(out, "montecarlo", data, markdown)
        plot_metric_vs_sigma(curves, out / "montecarlo.png", setting)
    except KirchhoffError as exc:
        fail(exc)
    for label, results in curves.items():
        typer.echo(
            f"{label}: "
            + ", ".join(f"σ {s:g}: {r.mean:.4g} ± {r.std:.2g}" for s, r in zip(sigmas, results, strict=True))
        )
    typer.echo(f"wrote {json_path}, {md_path} and {out / 'montecarlo.png'}")


@app.command()
def quantize(
    paths: ModelPaths,
    bits: Annotated[str, typer.Option(help="Bits per device parameter, comma-separated.")] = "2,4,6,8",
    scheme: Annotated[
        str,
        typer.Option(
            help="uniform (per slice and parameter row), lut (fitted device-level table), or both: uniform,lut."
        ),
    ] = "uniform,lut",
    points: Points = 1000,
    dataset: Dataset = None,
    seed: Seed = 0,
    out: Out = Path("runs/hw"),
) -> None:
    """Metric against bits per device parameter: quantization.json/.md and quantization.png."""
    from kirchhoffnet.hardware import quantization_sweep
    from kirchhoffnet.hardware.plots import plot_quantization
    from kirchhoffnet.hardware.quantize import SCHEMES
    from kirchhoffnet.hardware.report import quantization_markdown, write_study
    from kirchhoffnet.io.paths import check_out_dir

    try:
        check_out_dir(out)
        counts = parse_list(bits, int, "bits")
        schemes = [
            parse_choice(s, SCHEMES, "scheme", "a quantization scheme") for s in parse_list(scheme, str, "scheme")
        ]
        curves = {
            f"{label} {s}": quantization_sweep(model, metric, counts, s)
            for label, model, metric in _with_metrics(paths, dataset, points, seed)
            for s in schemes
        }
        json_path, md_path = write_study(
            out, "quantization", {"curves": curves}, quantization_markdown(curves, "Quantization of device parameters")
        )
        plot_quantization(curves, out / "quantization.png", "metric vs bits per device parameter")
    except KirchhoffError as exc:
        fail(exc)
    for label, points_ in curves.items():
        typer.echo(f"{label}: " + ", ".join(f"{p['bits']} bits: {p['value']:.4g}" for p in points_))
    typer.echo(f"wrote {json_path}, {md_path} and {out / 'quantization.png'}")


@app.command()
def noise(
    path: ModelPath,
    capacitance: Annotated[
        str, typer.Option(help="Node capacitances to compare, comma-separated (thermal noise grows as kT/C).")
    ] = "10aF,100aF,1fF,10fF,100fF,1pF",
    voltage: Annotated[str, typer.Option(help="Voltage scale V₀ per normalised volt (1V, 50mV).")] = "1V",
    temperature: Temperature = 300.0,
    excess: Annotated[
        float, typer.Option(min=0.0, help="Excess-noise factor γ (1 for resistors, ~2/3 for MOSFETs).")
    ] = 1.0,
    read: Annotated[float, typer.Option(min=0.0, max=1.0, help="Relative read noise of device currents.")] = 0.0,
    samples: Annotated[
        int, typer.Option(min=2, help="Inputs (base samples of a flow) run through the noisy circuit.")
    ] = 1000,
    inputs: Inputs = None,
    dt: Annotated[float, typer.Option(help="Euler–Maruyama step in normalised time.")] = 1e-3,
    points: Points = 1000,
    dataset: Dataset = None,
    seed: Seed = 0,
    out: Out = Path("runs/hw"),
) -> None:
    """Thermal (kT/C) and read noise: output deviation and, for 2-D flows, sample quality vs capacitance.

    Writes noise.json, noise.md and noise.png.
    """
    from dataclasses import replace

    import torch

    from kirchhoffnet.data import TOY_SETS, sample_toy
    from kirchhoffnet.hardware import Noise, PhysicalDesign, parse_quantity
    from kirchhoffnet.hardware.noise import noise_sweep
    from kirchhoffnet.hardware.plots import plot_noise
    from kirchhoffnet.hardware.report import noise_markdown, write_study
    from kirchhoffnet.io.paths import check_out_dir

    try:
        _check_numbers(
            temperature=(temperature, 0.0, None, False),
            excess=(excess, 0.0, None, True),
            read=(read, 0.0, 1.0, False),
            dt=(dt, 0.0, None, True),
        )
        check_out_dir(out)
        caps = parse_list(capacitance, lambda c: parse_quantity(c, "F", what="--capacitance"), "capacitance")
        base = PhysicalDesign(voltage_v=parse_quantity(voltage, "V", what="--voltage"), temperature_k=temperature)
        model, task = _load(path)
        x = _inputs(model, task, inputs, samples, seed)
        name = _dataset(path, dataset)
        reference = None
        if name is not None and name in TOY_SETS:
            reference = torch.from_numpy(sample_toy(name, points, seed=seed + 1))
        rows = noise_sweep(
            model,
            x,
            [replace(base, capacitance_f=c) for c in sorted(caps)],
            Noise(excess_factor=excess, read=read),
            reference=reference,
            dt=dt,
            seed=seed,
        )
        title = f"Noise in {path.name}: T = {temperature:g} K, γ = {excess:g}, read noise {read:g}"
        json_path, md_path = write_study(
            out, "noise", {"source": str(path.resolve()), "rows": rows}, noise_markdown(rows, title)
        )
        plot_noise(rows, out / "noise.png", title)
    except KirchhoffError as exc:
        fail(exc)
    for row in rows:
        typer.echo(f"C = {row['capacitance_f']:.3g} F: RMS output deviation {row['output_rms_deviation_v']:.3g} V")
    typer.echo(f"wrote {json_path}, {md_path} and {out / 'noise.png'}")

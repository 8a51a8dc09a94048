"""``kirchhoffnet hw``: what a trained model costs and how it degrades as a chip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kirchhoffnet.cli._common import fail, parse_choice, parse_list, status
from kirchhoffnet.errors import KirchhoffError

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
Out = Annotated[
    Path | None,
    typer.Option(
        help="Directory for the JSON, Markdown and PNG results (default: RUN_DIR/hw for a run directory, the first "
        "one given; runs/hw for a checkpoint file or an original result)."
    ),
]
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


def _wrote(files: tuple[Path, ...]) -> str:
    """``wrote a, b and c``: the files a study wrote, as every command ends."""
    return f"wrote {', '.join(map(str, files[:-1]))} and {files[-1]}"


def _out(out: Path | None, model: Path) -> Path:
    """``--out``, or the default: inside the analysed run, so two runs' studies never overwrite each other."""
    from kirchhoffnet.io.paths import check_out_dir
    from kirchhoffnet.runs import is_run_directory

    if out is None:
        out = model / "hw" if is_run_directory(model) else Path("runs/hw")
    return check_out_dir(out)


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
    from kirchhoffnet._finite import finite_number

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
    out: Out = None,
) -> None:
    """Latency, energy per inference, currents and voltage swing at a physical design.

    Writes hw_report.json, hw_report.md and waveforms.png. A KirchhoffNet score-circuit diffusion run is
    reported per generation (its probability-flow transient, over --samples generations).
    """
    from kirchhoffnet.training.hw import hw_report

    try:
        _check_numbers(temperature=(temperature, 0.0, None, False), settling=(settling, 0.0, None, False))
        out = _out(out, path)
        design = _design(capacitance, conductance, voltage, supply, temperature)
        study = hw_report(
            path, design, out, samples=samples, inputs=inputs, settling=settling, fit_voltage=voltage == "fit",
            points_per_slice=points_per_slice, seed=seed, progress=True,
        )  # fmt: skip
    except KirchhoffError as exc:
        fail(exc)
    typer.echo(json.dumps(study.summary))
    status(_wrote(study.files))


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
    out: Out = None,
) -> None:
    """Metric distribution over random dies at each σ: montecarlo.json/.md and montecarlo.png (one curve per model)."""
    from kirchhoffnet.hardware.variation import KINDS
    from kirchhoffnet.training.hw import hw_montecarlo

    try:
        _check_numbers(threshold=(threshold, None, None, False))
        out = _out(out, paths[0])
        sigmas = parse_list(sigma, float, "sigma")
        for value in sigmas:
            _check_numbers(sigma=(value, 0.0, 1.0, False))
        parse_choice(kind, KINDS, "kind", "a variation kind")
        study = hw_montecarlo(
            paths, sigmas, out, kind=kind, trials=trials, threshold=threshold, points=points, dataset=dataset,
            seed=seed, progress=True,
        )  # fmt: skip
    except KirchhoffError as exc:
        fail(exc)
    for label, results in study.result.items():
        typer.echo(
            f"{label}: "
            + ", ".join(f"σ {s:g}: {r.mean:.4g} ± {r.std:.2g}" for s, r in zip(sigmas, results, strict=True))
        )
    status(_wrote(study.files))


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
    dataset: Dataset = None,
    points: Points = 1000,
    seed: Seed = 0,
    out: Out = None,
) -> None:
    """Metric against bits per device parameter: quantization.json/.md and quantization.png."""
    from kirchhoffnet.hardware.quantize import SCHEMES
    from kirchhoffnet.training.hw import hw_quantize

    try:
        out = _out(out, paths[0])
        counts = parse_list(bits, int, "bits")
        schemes = [
            parse_choice(s, SCHEMES, "scheme", "a quantization scheme") for s in parse_list(scheme, str, "scheme")
        ]
        study = hw_quantize(paths, counts, schemes, out, points=points, dataset=dataset, seed=seed, progress=True)
    except KirchhoffError as exc:
        fail(exc)
    for label, points_ in study.result.items():
        typer.echo(f"{label}: " + ", ".join(f"{p['bits']} bits: {p['value']:.4g}" for p in points_))
    status(_wrote(study.files))


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
    out: Out = None,
) -> None:
    """Thermal (kT/C) and read noise: output deviation and, for 2-D flows, sample quality vs capacitance.

    Writes noise.json, noise.md and noise.png.
    """
    from kirchhoffnet.hardware import Noise, PhysicalDesign, parse_quantity
    from kirchhoffnet.training.hw import hw_noise

    try:
        _check_numbers(
            temperature=(temperature, 0.0, None, False),
            excess=(excess, 0.0, None, True),
            read=(read, 0.0, 1.0, False),
            dt=(dt, 0.0, None, True),
        )
        out = _out(out, path)
        caps = parse_list(capacitance, lambda c: parse_quantity(c, "F", what="--capacitance"), "capacitance")
        base = PhysicalDesign(voltage_v=parse_quantity(voltage, "V", what="--voltage"), temperature_k=temperature)
        study = hw_noise(
            path, caps, base, Noise(excess_factor=excess, read=read), out, samples=samples, inputs=inputs,
            points=points, dataset=dataset, dt=dt, seed=seed, progress=True,
        )  # fmt: skip
    except KirchhoffError as exc:
        fail(exc)
    for row in study.result:
        typer.echo(f"C = {row['capacitance_f']:.3g} F: RMS output deviation {row['output_rms_deviation_v']:.3g} V")
    status(_wrote(study.files))

"""``kirchhoffnet spice``: export trained circuits to SPICE netlists and verify them against ngspice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kirchhoffnet.errors import KirchhoffError

app = typer.Typer(
    help="Export circuits to SPICE netlists and check them against ngspice (apt-get install -y ngspice).",
    no_args_is_help=True,
)

ModelPath = Annotated[
    Path,
    typer.Argument(
        help="A .safetensors checkpoint, a run directory with model.safetensors, or an original result directory."
    ),
]
Samples = Annotated[int, typer.Option(min=1, help="Input samples (standard normal: a flow's base samples).")]
Seed = Annotated[int, typer.Option(help="Seed of the input samples.")]
Reltol = Annotated[float, typer.Option(help="ngspice reltol (relative tolerance; its default is 1e-3).")]
MaxStep = Annotated[float, typer.Option(help="Largest ngspice time step, as a fraction of a slice's duration.")]


def _fail(exc: KirchhoffError) -> None:
    from kirchhoffnet.cli.main import _fail as fail  # main imports this module, so resolve at call time

    fail(exc)


def _options(reltol: float, max_step: float, **extra: Any) -> Any:
    from kirchhoffnet.spice import SpiceOptions

    return SpiceOptions(reltol=reltol, max_step_fraction=max_step, **extra)


@app.command("export")
def export(
    path: ModelPath,
    out: Annotated[
        Path, typer.Option(help="Netlist file; with several slices, <stem>.slice<k>.cir files are written instead.")
    ] = Path("net.cir"),
    samples: Samples = 1,
    seed: Seed = 0,
    reltol: Reltol = 1e-8,
    max_step: MaxStep = 2e-3,
) -> None:
    """Write the model's SPICE netlist: node capacitors with initial voltages, a current source per edge."""
    from kirchhoffnet.io import load_model
    from kirchhoffnet.spice import random_inputs
    from kirchhoffnet.spice.export import export_netlists

    try:
        model = load_model(path)
        written = export_netlists(model, random_inputs(model, samples, seed), out, _options(reltol, max_step))
    except KirchhoffError as exc:
        _fail(exc)
    for target in written:
        typer.echo(f"wrote {target}")
    typer.echo(f"run with: ngspice -b -r out.raw {written[0]}")


@app.command("verify")
def verify(
    path: ModelPath,
    samples: Samples = 4,
    seed: Seed = 0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report (errors in V, sizes, timings) as JSON here.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG overlaying ngspice and kirchhoffnet waveforms here.")
    ] = None,
    max_error: Annotated[
        float, typer.Option(help="Exit with status 1 when the largest voltage difference exceeds this (V).")
    ] = 1e-3,
    reltol: Reltol = 1e-8,
    max_step: MaxStep = 2e-3,
    points: Annotated[int, typer.Option(min=2, help="Comparison points per slice.")] = 101,
    jobs: Annotated[int | None, typer.Option(min=1, help="ngspice processes at once (default: CPUs).")] = None,
) -> None:
    """Simulate the model in ngspice and in kirchhoffnet on the same inputs and compare node voltages."""
    from kirchhoffnet.io import load_model, write_json_atomic
    from kirchhoffnet.spice import verify as run_verify

    try:
        model = load_model(path)
        report = run_verify(model, samples, seed=seed, options=_options(reltol, max_step, points=points), jobs=jobs)
        if json_out is not None:
            write_json_atomic(json_out, {**report.to_dict(), "source": str(path.resolve()), "seed": seed})
        if plot is not None:
            report.plot(plot)
    except KirchhoffError as exc:
        _fail(exc)
    summary = {k: report.to_dict()[k] for k in ("max_abs_error_V", "mean_abs_error_V", "nodes", "edges", "samples")}
    summary |= {k: round(report.to_dict()[k], 3) for k in ("ngspice_seconds", "kirchhoffnet_seconds")}
    typer.echo(json.dumps(summary))
    for target in (json_out, plot):
        if target is not None:
            typer.echo(f"wrote {target}")
    if report.max_abs_error_V > max_error:
        typer.echo(
            f"error: ngspice and kirchhoffnet differ by up to {report.max_abs_error_V:.3g} V, more than "
            f"--max-error {max_error:g} V; tighten --reltol or --max-step",
            err=True,
        )
        raise typer.Exit(code=1)

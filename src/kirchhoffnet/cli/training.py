"""``kirchhoffnet train | sample | report``: thin commands over [`kirchhoffnet.training`][kirchhoffnet.training]."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kirchhoffnet._finite import SEED_MAX
from kirchhoffnet.cli._common import fail, status
from kirchhoffnet.errors import KirchhoffError

app = typer.Typer()


@app.command("train")
def train_command(
    config: Annotated[
        Path, typer.Argument(help="A YAML config (see configs/), or a run directory to continue with --resume.")
    ],
    out: Annotated[Path | None, typer.Option(help="Run directory (default: runs/NAME, NAME from the config).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint (same config).")
    ] = False,
    seed: Annotated[
        int | None, typer.Option(min=0, max=SEED_MAX, help="Seed of initialisation, shuffling and sampling.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a setting, e.g. --set train.lr=1e-3 --set circuit.slices=4."),
    ] = None,
    progress: Annotated[
        bool,
        typer.Option(
            help="Show progress with loss and NFE: a bar on a terminal, elsewhere a line every "
            "KIRCHHOFFNET_PROGRESS_S seconds (default 30)."
        ),
    ] = True,
) -> None:
    """Train a model from a config into a run directory.

    Writes config.yaml, checkpoint.pt, model.safetensors, metrics.json and plots. The same command runs
    under torchrun (DDP, one process per core or GPU).
    """
    from kirchhoffnet.config import load_config
    from kirchhoffnet.training import train

    if config.is_dir():
        out = out or config
        config = config / "config.yaml"
    from kirchhoffnet.io.paths import check_out_dir

    try:
        if out is not None:
            check_out_dir(out)
        settings = load_config(config, set_ or [], seed=seed, device=device)
        result = train(settings, out, resume=resume, progress=progress)
    except KirchhoffError as exc:
        fail(exc)
    if result.metrics:  # rank 0 under torchrun
        test = result.metrics["test"]
        key = result.metrics["primary_metric"]
        typer.echo(
            f"{result.metrics['status']}: {key} = {test[key]:.6g} after {result.metrics['epochs_completed']} epochs "
            f"({result.metrics['train_wall_time_s']:.0f} s); wrote {result.run_dir}"
        )


@app.command("sample")
def sample_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory of a generative task (flow2d, density, mnist_gen).")],
    n: Annotated[int, typer.Option("-n", "--num", min=1, help="Number of samples.")] = 1000,
    out: Annotated[Path | None, typer.Option(help="Output directory (default: RUN_DIR/samples).")] = None,
    seed: Annotated[int, typer.Option(min=0, max=SEED_MAX, help="Seed of the base samples.")] = 0,
) -> None:
    """Draw samples from a trained flow: samples.npy and a plot."""
    from kirchhoffnet.training import sample_run

    try:
        written = sample_run(run_dir, n, out, seed)
    except KirchhoffError as exc:
        fail(exc)
    typer.echo(json.dumps(written))


@app.command("report")
def report_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="Finished run directories.")],
    out: Annotated[Path, typer.Option(help="Directory for report.md and report.json.")] = Path("runs/report"),
) -> None:
    """Tabulate finished runs as Markdown and JSON.

    One row per run, plus a data set x model table of the main test metric (for example KirchhoffNet
    sizes against an MLP baseline).
    """
    from kirchhoffnet.io.paths import check_out_dir
    from kirchhoffnet.training.report import write_report

    try:
        check_out_dir(out)
        md, data, text = write_report(list(run_dirs), out)
    except KirchhoffError as exc:
        fail(exc)
    typer.echo(text)
    status(f"wrote {md} and {data}")


@app.command("simulate")
def simulate_command(
    path: Annotated[Path, typer.Argument(help="A run directory, a .safetensors checkpoint or an original result.")],
    waveforms: Annotated[
        Path,
        typer.Option(
            help="Waveform file: .raw (SPICE3 binary, one plot per slice) or .csv (one <stem>.slice<k>.csv per "
            "slice when there are several)."
        ),
    ],
    samples: Annotated[
        int, typer.Option(min=1, help="Inputs simulated; with several, columns are v(n<node>_<sample>).")
    ] = 1,
    inputs: Annotated[
        Path | None,
        typer.Option(help="A .npy (N, d) array of inputs; default: a run's test inputs, or a flow's base samples."),
    ] = None,
    points: Annotated[int, typer.Option(min=2, help="Time points per slice.")] = 101,
    seed: Annotated[int, typer.Option(min=0, max=SEED_MAX, help="Seed of a flow's base samples.")] = 0,
) -> None:
    """Simulate a saved model (float64) and write the node voltages of every slice as a waveform file."""
    import copy

    import torch

    from kirchhoffnet.io.paths import check_out_file
    from kirchhoffnet.solve import trajectory
    from kirchhoffnet.spice.netlist import as_circuit
    from kirchhoffnet.spice.waveforms import waveform_format, write_trajectory
    from kirchhoffnet.training.hw import open_saved, study_inputs

    try:
        check_out_file(waveforms, "--waveforms")
        waveform_format(waveforms)
        saved = open_saved(path)
        x = study_inputs(saved, samples, inputs=inputs, seed=seed).to(torch.float64)
        circuit = copy.deepcopy(as_circuit(saved.model)).to(torch.float64)
        with torch.no_grad():
            slices, _ = trajectory(circuit, x, points_per_slice=points)
        written = write_trajectory(waveforms, slices)
    except KirchhoffError as exc:
        fail(exc)
    status(f"wrote {', '.join(map(str, written))} ({len(x)} sample(s), {len(slices)} slice(s))")

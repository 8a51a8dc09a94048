"""The ``kirchhoffnet`` command line: thin wrappers over the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kirchhoffnet._finite import SEED_MAX
from kirchhoffnet.cli import diffusion as diffusion_cli
from kirchhoffnet.cli import training
from kirchhoffnet.cli._common import CONTEXT, OneLineGroup, fail, state, status
from kirchhoffnet.cli.hw import app as hw_app
from kirchhoffnet.cli.spice import app as spice_app
from kirchhoffnet.errors import ConfigError, KirchhoffError
from kirchhoffnet.runtime import MAX_THREADS, command_threads, keep_freed_memory
from kirchhoffnet.version import __version__

app = typer.Typer(
    help="KirchhoffNet: analog ODE neural networks whose forward pass is the physics of a circuit.",
    cls=OneLineGroup,
    no_args_is_help=True,
    context_settings=CONTEXT,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kirchhoffnet {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_THREADS,
            help="CPU threads of the numba edge kernels; torch stays on one (two torch threads made a CNF step "
            "6-25x slower on a busy 2-core machine). Default 1; without --threads, OMP_NUM_THREADS, when set, "
            "sets torch's count instead. A training config's `threads` still applies to its run.",
        ),
    ] = None,
) -> None:
    state["debug"] = debug
    keep_freed_memory()  # a process-wide allocator setting: the command's to make, not the library's
    command_threads(threads)  # the same: a library import never changes torch's threads


@app.command("eval")
def evaluate(
    path: Annotated[
        Path,
        typer.Argument(help="A run directory of `kirchhoffnet train`, or an original result (config.yaml, model.pth)."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for metrics.json and plots (default: RUN_DIR/eval, or runs/eval for originals)."),
    ] = None,
    samples: Annotated[
        int, typer.Option(min=1, help="Originals: held-out points for the NLL and model samples to plot.")
    ] = 10_000,
    seed: Annotated[
        int, typer.Option(min=0, max=SEED_MAX, help="Originals: seed of the held-out data and of the base samples.")
    ] = 0,
    batch: Annotated[int, typer.Option(min=1, help="Originals: points per solver call (bounds memory).")] = 2_000,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Runs: score under another solver, e.g. --set solver.method=dopri5 --set solver.rtol=1e-6 "
            "(only solver.KEY=VALUE; recorded in metrics.json).",
        ),
    ] = None,
) -> None:
    """Evaluate a trained model on held-out data: metrics.json and the task's plots.

    A run directory is re-evaluated exactly as at the end of training (its config decides the data), or
    under another solver with --set solver.KEY=VALUE (a fixed-step-trained model checked under dopri5);
    an original 2-D flow result gets the held-out NLL (nats), samples vs data and the density.
    """
    from kirchhoffnet.io.paths import check_out_dir
    from kirchhoffnet.tasks import evaluate_path
    from kirchhoffnet.training import evaluate_run, is_run_dir

    try:
        if is_run_dir(path):
            target = check_out_dir(out or path / "eval")
            metrics = evaluate_run(path, target, progress=True, overrides=overrides or ())
        elif overrides:
            raise ConfigError("--set applies to run directories of `kirchhoffnet train`, not to original results")
        else:
            target = check_out_dir(out or Path("runs/eval"))
            metrics = evaluate_path(path, target, num_samples=samples, seed=seed, batch=batch, progress=True)
    except KirchhoffError as exc:
        fail(exc)
    shown = {k: v for k, v in metrics.items() if isinstance(v, (str, int, float)) and k != "run_dir"}
    typer.echo(json.dumps(shown))
    status(f"wrote {target / 'metrics.json'} and plots in {target}")


app.add_typer(training.app)
app.add_typer(spice_app, name="spice")
app.add_typer(hw_app, name="hw")
app.add_typer(diffusion_cli.app, name="diffusion")

if __name__ == "__main__":
    app()

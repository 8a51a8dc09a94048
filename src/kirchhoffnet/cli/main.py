"""The ``kirchhoffnet`` command line: thin wrappers over the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kirchhoffnet.cli import diffusion as diffusion_cli
from kirchhoffnet.errors import KirchhoffError
from kirchhoffnet.version import __version__

app = typer.Typer(
    help="KirchhoffNet: analog ODE neural networks whose forward pass is the physics of a circuit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


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
) -> None:
    _state["debug"] = debug


def _fail(exc: KirchhoffError) -> None:
    if _state["debug"]:
        raise exc
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code=2)


@app.command("eval")
def evaluate(
    path: Annotated[
        Path, typer.Argument(help="A result directory of the original KirchhoffNet code (config.yaml + model.pth).")
    ],
    out: Annotated[Path, typer.Option(help="Directory for metrics.json and samples.png.")] = Path("runs/eval"),
    samples: Annotated[
        int, typer.Option(min=1, help="Held-out points for the NLL and model samples to plot.")
    ] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the held-out data and of the base samples.")] = 0,
    batch: Annotated[int, typer.Option(min=1, help="Points per solver call (bounds memory).")] = 2_000,
) -> None:
    """Evaluate a trained flow: held-out NLL (nats), samples vs data and the density, as JSON and PNG."""
    from kirchhoffnet.tasks import evaluate_path

    try:
        metrics = evaluate_path(path, out, num_samples=samples, seed=seed, batch=batch, progress=sys.stderr.isatty())
    except KirchhoffError as exc:
        _fail(exc)
    typer.echo(json.dumps({k: metrics[k] for k in ("dataset", "nll_nats", "num_test_points")}, indent=None))
    typer.echo(f"wrote {out / 'metrics.json'} and {out / 'samples.png'}")


app.add_typer(diffusion_cli.app, name="diffusion")

if __name__ == "__main__":
    app()

"""What every command shares: the --debug switch and one-line errors with exit code 2."""

from __future__ import annotations

from typing import NoReturn

import typer

from kirchhoffnet.errors import KirchhoffError

state = {"debug": False}


def fail(exc: KirchhoffError) -> NoReturn:
    """Print a KirchhoffError as one line and exit with code 2 (the traceback with --debug)."""
    if state["debug"]:
        raise exc
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code=2)

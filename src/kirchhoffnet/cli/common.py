"""What every command shares: the --debug switch, one-line errors with exit code 2, and the
parsing of list and choice options into values or such errors."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import NoReturn, TypeVar

import typer

from kirchhoffnet.errors import ConfigError, KirchhoffError

T = TypeVar("T")

state = {"debug": False}


def fail(exc: KirchhoffError) -> NoReturn:
    """Print a KirchhoffError as one line and exit with code 2 (the traceback with --debug)."""
    if state["debug"]:
        raise exc
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code=2)


def parse_list(text: str, convert: Callable[[str], T], option: str) -> list[T]:
    """``"0.01,0.02"`` → ``[0.01, 0.02]`` with a one-line error naming the option."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"--{option} needs at least one value, got {text!r}")
    try:
        return [convert(item) for item in items]
    except ValueError:
        raise ConfigError(f"--{option} must be a comma-separated list of numbers, got {text!r}") from None


def parse_choice(value: str, valid: Collection[str], option: str, what: str) -> str:
    """``value`` if it is one of ``valid``, else a one-line error naming the option and the choices."""
    if value not in valid:
        raise ConfigError(f"--{option} {value!r} is not {what}; choose one of: {', '.join(valid)}")
    return value

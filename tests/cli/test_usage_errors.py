"""CLI messages (issue 20, class 6): every usage error of every command is one ``error:`` line with exit
code 2, and what no command converted (an OSError, Ctrl-C, a bug) is one line too.

The table is built from the command tree itself, so a command added later is covered without
editing this file.
"""

from __future__ import annotations

import errno
import typing
from typing import Any

import pytest
import typer.main
from typer.models import OptionInfo
from typer.testing import CliRunner

from kirchhoffnet.cli.main import app
from kirchhoffnet.errors import ConfigError

runner = CliRunner()
ROOT = typer.main.get_command(app)


def _commands(command: Any = ROOT, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """``(path, command)`` of every command and group below ``command``."""
    found = [(path, command)] if path else []
    for name, child in getattr(command, "commands", {}).items():
        found += _commands(child, (*path, name))
    return found


COMMANDS = _commands()
LEAVES = [(path, command) for path, command in COMMANDS if not hasattr(command, "commands")]
GROUPS = [()] + [path for path, command in COMMANDS if hasattr(command, "commands")]


def _numbers(command: Any) -> list[tuple[str, type, Any]]:
    """``(option, int or float, its minimum or None)`` of each numeric option, from the annotations."""
    hints = typing.get_type_hints(command.callback, include_extras=True)
    found = []
    for param in command.params:
        hint = hints.get(param.name)
        base, *extras = typing.get_args(hint) if typing.get_origin(hint) is typing.Annotated else (hint,)
        if base in (int, float) and param.opts[0].startswith("--"):
            info = next((e for e in extras if isinstance(e, OptionInfo)), None)
            found.append((param.opts[0], base, getattr(info, "min", None)))
    return found


def one_line(args: list[str], code: int = 2) -> str:
    result = runner.invoke(app, args)
    lines = result.stderr.splitlines()
    assert result.exit_code == code, (args, result.exit_code, result.output[-1500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr[-1500:])
    assert "╭" not in result.stderr and "Traceback" not in result.output  # help on stdout may be boxed
    return lines[0]


def test_the_table_covers_every_command():
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"eval", "train", "sample", "report", "hw report", "spice verify", "diffusion sample"} <= names
    assert sum(len(_numbers(command)) for _, command in LEAVES) >= 20


@pytest.mark.parametrize("path", [path for path, _ in LEAVES], ids=" ".join)
def test_an_unknown_option_is_one_line(path):
    line = one_line([*path, "--no-such-option"])
    assert "No such option: --no-such-option" in line and f"{' '.join(path)} --help" in line


@pytest.mark.parametrize("path", [path for path, c in LEAVES if any(p.required for p in c.params)], ids=" ".join)
def test_a_missing_argument_is_one_line(path):
    line = one_line(list(path))  # a required argument or a required option (spice tabulate --model-card)
    assert ("Missing argument" in line or "Missing option" in line) and f"{' '.join(path)} --help" in line


@pytest.mark.parametrize(
    ("path", "option", "kind", "minimum"),
    [(path, *number) for path, command in LEAVES for number in _numbers(command)],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v),
)
def test_a_bad_number_and_one_below_the_minimum_are_one_line(path, option, kind, minimum):
    assert f"Invalid value for '{option}'" in one_line([*path, option, "not-a-number"])
    if minimum is not None:
        below = minimum - 1 if kind is int else minimum - 1e-3
        assert f"Invalid value for '{option}'" in one_line([*path, option, str(below)])


@pytest.mark.parametrize("path", GROUPS, ids=lambda p: " ".join(p) or "kirchhoffnet")
def test_a_missing_or_unknown_command_is_one_line(path):
    assert "missing command; choose one of: " in one_line(list(path))
    assert "No such command 'frobnicate'" in one_line([*path, "frobnicate"])


def test_help_and_version_still_work():
    result = runner.invoke(app, ["hw", "report", "--help"])
    assert result.exit_code == 0 and "--capacitance" in result.output and not result.stderr


@pytest.mark.parametrize(
    ("raised", "code", "expected"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/full/report.md"),
            1,
            "No space left on device: /full/report.md",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/ro/a", None, "/ro/b"),
            1,
            "Permission denied: /ro/a -> /ro/b",
        ),
        (KeyboardInterrupt(), 130, "interrupted"),
        (ConfigError("a message\non two lines"), 2, "a message on two lines"),
        (RuntimeError("boom\nsecond line " + "x" * 5000), 1, "internal error (RuntimeError: boom); rerun as `kirchh"),
        (AssertionError(), 1, "internal error (AssertionError); rerun as `kirchhoffnet --debug COMMAND ...` for the"),
        (MemoryError(), 1, "out of memory (MemoryError); ask for less work at once"),
        (
            RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: 8 TB"),
            1,
            "out of memory ([enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory",
        ),
    ],
    ids=["enospc", "eacces-rename", "ctrl-c", "uncaught-kirchhoff-error", "bug", "bare-assert", "memory", "alloc"],
)
def test_what_no_command_converted_is_one_line(monkeypatch, tmp_path, raised, code, expected):
    """Fault injection: the library raises what it should not; the last resort still prints one line."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise raised

    monkeypatch.setattr("kirchhoffnet.training.report.write_report", broken)
    line = one_line(["report", str(tmp_path)], code)
    assert line == f"error: {expected}" or line.startswith(f"error: {expected}"), line
    assert len(line) < 400


def test_debug_keeps_the_traceback(monkeypatch, tmp_path):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("kirchhoffnet.training.report.write_report", broken)
    result = runner.invoke(app, ["--debug", "report", str(tmp_path)])
    assert isinstance(result.exception, RuntimeError) and str(result.exception) == "boom"

"""What every command shares: the --debug switch, one-line errors with their exit codes, plain help, and
the parsing of list and choice options into values or such errors.

Exit codes: 0 success; 2 a usage error, the command line or a config is invalid (click's usage errors,
[`ConfigError`][kirchhoffnet.errors.ConfigError], ``TopologyError``, ``DeviceError``): fix the request; 1 a runtime
failure, a valid request that failed while running (missing or corrupt files, a busy or mismatched run
directory, a solver or training failure, ngspice, a full disk, out of memory, an internal error); 130 Ctrl-C.

`OneLineGroup` is the root command: click's usage errors (a bad option value, a missing
argument, an unknown option) become one ``error:`` line instead of typer's boxed panel, and it is
the last resort for what no command converted: an ``OSError`` names its path, Ctrl-C is
``error: interrupted``, anything else is ``error: internal error (...)``, a bug to fix, whose
traceback ``--debug`` shows.
"""

from __future__ import annotations

import errno
import inspect
import sys
from collections.abc import Callable, Collection, Sequence
from typing import Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

try:  # typer 0.2x carries its own copy of click, whose exceptions these are
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # older typer runs on click itself
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[assignment]

from kirchhoffnet.errors import ConfigError, DeviceError, KirchhoffError, TopologyError, clip, shown

T = TypeVar("T")
# The longest error line printed: a message is one line, whatever text an exception carries.
MESSAGE_CHARS = 1000

state = {"debug": False}
USAGE, RUNTIME = 2, 1
CONTEXT = {"help_option_names": ["-h", "--help"]}
"""Every command's click context settings: ``-h`` as well as ``--help``."""


def exit_code(exc: KirchhoffError) -> int:
    """2 for an invalid request (a config or option value), 1 for a valid one that failed while running."""
    return USAGE if isinstance(exc, ConfigError | TopologyError | DeviceError) else RUNTIME


def fail(exc: KirchhoffError) -> NoReturn:
    """Print a KirchhoffError as one line and exit with `exit_code` (the traceback with --debug)."""
    if state["debug"]:
        raise exc
    typer.echo(f"error: {clip(str(exc), MESSAGE_CHARS)}", err=True)
    raise typer.Exit(code=exit_code(exc))


def status(message: str) -> None:
    """A line about what a command did (``wrote ...``), on stderr: stdout holds the result alone."""
    typer.echo(message, err=True)


def describe_os_error(exc: OSError) -> str:
    """``<strerror>: <path>`` (both paths of a rename), on one line."""
    reason = exc.strerror or (errno.errorcode.get(exc.errno, "") if exc.errno else "") or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return clip(f"{reason}: {' -> '.join(paths)}" if paths else reason, 300)


def describe_unexpected(exc: BaseException) -> str:
    """The one line for an exception no command expected: a bug, whose traceback --debug shows."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    detail = f"{type(exc).__name__}: {clip(first, 120)}" if first else type(exc).__name__
    return f"internal error ({detail}); rerun as `kirchhoffnet --debug COMMAND ...` for the traceback"


class OneLineGroup(TyperGroup):
    """The root command group: whatever happens, at most one ``error:`` line on stderr; help without
    typer's ``<bool>`` and ``{name}`` tags."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_help(self)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:  # a caller that handles click's exceptions itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:  # the help is printed; say what was missing
            choices = (
                ", ".join(exc.ctx.command.list_commands(exc.ctx)) if isinstance(exc.ctx.command, TyperGroup) else ""
            )
            _exit(f"missing command; choose one of: {choices}" if choices else "missing arguments", exc.exit_code)
        except ClickException as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if isinstance(exc, UsageError) and exc.ctx else ""
            _exit(f"{clip(exc.format_message(), MESSAGE_CHARS // 2)}{where}", exc.exit_code)
        except typer.Abort:
            _exit("aborted", RUNTIME)
        except Exception as exc:  # outside a command: reading arguments, writing the output
            _last_resort(exc)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        """Run the command; the exceptions it did not turn into a one-line error end here."""
        try:
            return super().invoke(ctx)
        except (ClickException, typer.Exit, typer.Abort):
            raise
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # a closed pipe: typer exits quietly
                raise
            _last_resort(exc)
        except (Exception, KeyboardInterrupt) as exc:
            _last_resort(exc)


def _plain_help(command: Any) -> None:
    """Show click's plain ``NAME`` and ``--out PATH`` in help and usage instead of typer's ``{name}`` and
    ``<path>``, no type at all for a flag, and each help paragraph as one (recursively through groups).
    Parameters are patched as ``get_params`` hands them out, which covers those typer adds late (``--help``,
    the completion options); typer releases without these display hooks ignore the attributes."""
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)
    if command.help:  # typer's rich help keeps a docstring's line breaks: join each paragraph's lines
        paragraphs = inspect.cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    get_params = command.get_params

    def plain_params(ctx: Any) -> Any:
        params = get_params(ctx)
        for param in params:
            _plain_param(param)
        return params

    command.get_params = plain_params


def _plain_param(param: Any) -> None:
    argument = param.param_type_name == "argument"
    shown_type = None if argument or getattr(param, "is_flag", False) else _metavar(param)
    param.display_type_rich = lambda ctx, text=shown_type: text
    if argument:
        name = (param.name or "").upper() + ("..." if param.nargs != 1 else "")
        param._usage_display_name = lambda text=name, p=param: text if p.required else f"[{text}]"


def _metavar(param: Any) -> str:
    """``PATH``, ``INTEGER``, ``FLOAT``, ``TEXT``: click's names of a value's type."""
    if param.metavar:
        return str(param.metavar)
    bare = param.bare_type() if hasattr(param, "bare_type") else getattr(param.type, "name", "text")
    bare = bare.removeprefix("list[").removesuffix("]").replace(" range", "").lower()
    return {"str": "TEXT", "int": "INTEGER", "path": "PATH"}.get(bare, bare.upper())


def _last_resort(exc: BaseException) -> NoReturn:
    """One line for an exception no command handled (``--debug`` raises it instead)."""
    if state["debug"]:
        raise exc
    if isinstance(exc, KirchhoffError):  # a command that forgot to catch it: classified all the same
        _exit(clip(str(exc), MESSAGE_CHARS), exit_code(exc))
    if isinstance(exc, KeyboardInterrupt):
        _exit("interrupted", 130)
    if isinstance(exc, OSError):
        _exit(describe_os_error(exc), RUNTIME)
    if out_of_memory(exc):
        _exit(
            f"out of memory ({clip(str(exc).strip().splitlines()[0] if str(exc).strip() else 'MemoryError', 120)}); "
            "ask for less work at once: fewer samples, a smaller batch or a smaller model",
            RUNTIME,
        )
    _exit(describe_unexpected(exc), RUNTIME)


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: Python's MemoryError or torch's allocator refusing a tensor.

    The pre-flights bound what a command asks for; this is the net under what they cannot predict
    (the memory other processes hold), so a refused allocation is a runtime failure, not a bug."""
    torch = sys.modules.get("torch")  # only loaded once a command needed it; --help stays fast
    if isinstance(exc, MemoryError) or (torch is not None and isinstance(exc, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(
        mark in str(exc) for mark in ("DefaultCPUAllocator: can't allocate", "not enough memory", "out of memory")
    )


def _exit(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


def parse_list(text: str, convert: Callable[[str], T], option: str) -> list[T]:
    """``"0.01,0.02"`` → ``[0.01, 0.02]`` with a one-line error naming the option."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"--{option} needs at least one value, got {shown(text)}")
    try:
        return [convert(item) for item in items]
    except ValueError:
        raise ConfigError(f"--{option} must be a comma-separated list of numbers, got {shown(text)}") from None


def parse_choice(value: str, valid: Collection[str], option: str, what: str) -> str:
    """``value`` if it is one of ``valid``, else a one-line error naming the option and the choices."""
    if value not in valid:
        raise ConfigError(f"--{option} {shown(value)} is not {what}; choose one of: {', '.join(valid)}")
    return value

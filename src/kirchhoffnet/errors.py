"""The error family of kirchhoffnet.

Every error a user can provoke derives from [`KirchhoffError`][kirchhoffnet.errors.KirchhoffError] and from the builtin
it refines, so ``except ValueError`` keeps working for callers who do not know this package. A
message says what is wrong, where, what was found, and how to fix it; the CLI prints it as one
line.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable

# How long a value quoted in a message may be: input can be a megabyte string or an alias bomb.
SHOWN_CHARS = 80
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 60, 60, 40
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxarray = 4


class KirchhoffError(Exception):
    """Base class of every error raised on purpose by kirchhoffnet."""


class TopologyError(KirchhoffError, ValueError):
    """An ``edge_index`` or node assignment that does not describe a valid circuit."""


class DeviceError(KirchhoffError, ValueError):
    """An unknown device family or device parameters of the wrong shape."""


class ConfigError(KirchhoffError, ValueError):
    """A configuration value that is missing, of the wrong type or impossible."""


class CheckpointError(KirchhoffError, ValueError):
    """A checkpoint that cannot be read or does not match the model it is loaded into."""


class SolverError(KirchhoffError, RuntimeError):
    """The ODE solver failed: step-size underflow, too many steps or a non-finite state."""


class DataError(KirchhoffError, ValueError):
    """A data set file that is missing or corrupt, or input tensors that are not usable."""


class TrainingError(KirchhoffError, RuntimeError):
    """A training run that cannot go on: a non-finite loss, a busy or mismatched run directory."""


class StorageError(KirchhoffError, OSError):
    """A file or directory that cannot be written: a full disk, no permission, a path through a file or a
    symbolic link where kirchhoffnet creates one; the previous good state is kept."""


class ToolError(KirchhoffError, RuntimeError):
    """An external program (such as ngspice) is missing, failed or timed out."""


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for a message, on one line and at most ``limit`` characters, in time bounded
    however large or deeply nested the value is (never the full repr of unbounded input)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"<{'-' if value < 0 else ''}integer of about {int(value.bit_length() * 0.30103)} digits>"
    try:
        text = _REPR.repr(value)
    except Exception:  # a repr that fails (or an int too long to print) must not break the message
        text = f"<{type(value).__name__}>"
    return clip(text, limit)


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters with ``...`` marking the cut."""
    text = " ".join(text.split()) if text.splitlines() != [text] else text  # any line break (\v, \x1c, \u2028...)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def unknown_choice(kind: str, name: object, choices: Iterable[str]) -> str:
    """Message for a name that is not among the valid choices, listing them."""
    options = ", ".join(sorted(choices))
    return f"unknown {kind} {shown(name)}; choose one of: {options}"

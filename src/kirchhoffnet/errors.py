"""The error family of kirchhoffnet.

Every error a user can provoke derives from :class:`KirchhoffError` and from the builtin it
refines, so ``except ValueError`` keeps working for callers who do not know this package. A
message says what is wrong, where, what was found, and how to fix it; the CLI prints it as one
line.
"""

from __future__ import annotations

from collections.abc import Iterable


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


def unknown_choice(kind: str, name: object, choices: Iterable[str]) -> str:
    """Message for a name that is not among the valid choices, listing them."""
    options = ", ".join(sorted(choices))
    return f"unknown {kind} {name!r}; choose one of: {options}"

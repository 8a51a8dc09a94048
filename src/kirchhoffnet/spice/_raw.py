"""Reading and writing SPICE3 raw files (the ``-r out.raw`` output of ngspice).

The reader takes binary and ASCII files; the writer writes binary, real transient plots, which
ngspice (``load``) and waveform viewers that read SPICE3 raw files open. Both use the header
keys below, so what one writes the other reads back bit for bit.

A raw file is a sequence of plots. Each starts with a text header of ``Key: value`` lines
(``Plotname``, ``Flags``, ``No. Variables``, ``No. Points``), then ``Variables:`` with one
``index name type`` line per variable, then either ``Binary:`` followed by the points as
little-endian float64 (point-major: all variables of point 0, then point 1, ...; complex
values as two float64) or ``Values:`` followed by the same numbers as text.

A simulator killed mid-write, or a file that is no raw file at all, must end in one
[`DataError`][kirchhoffnet.errors.DataError] naming the file: counts are checked before anything is allocated from them,
and every number is parsed where a bad one can be reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kirchhoffnet._finite import require_finite
from kirchhoffnet.errors import ConfigError, DataError, shown
from kirchhoffnet.io import atomic_write

TITLE, DATE, PLOTNAME, FLAGS = "Title", "Date", "Plotname", "Flags"
NUM_VARIABLES, NUM_POINTS, VARIABLES, BINARY, VALUES = "No. Variables", "No. Points", "Variables", "Binary", "Values"


@dataclass(frozen=True)
class RawPlot:
    """One analysis result of a raw file.

    Attributes:
        name: the ``Plotname`` (e.g. ``Transient Analysis``).
        variables: variable names as ngspice writes them, lower case (``time``, ``v(n1)``).
        data: (points, variables) float64, or complex128 for AC results.
    """

    name: str
    variables: tuple[str, ...]
    data: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        """The column of variable ``name`` (case-insensitive)."""
        try:
            return self.data[:, self.variables.index(name.lower())]
        except ValueError:
            shown = ", ".join(self.variables[:8]) + (", ..." if len(self.variables) > 8 else "")
            raise DataError(f"raw plot {self.name!r} has no variable {name!r}; it has {shown}") from None


def read_raw(path: str | os.PathLike[str]) -> list[RawPlot]:
    """All plots of a raw file, in file order."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read raw file {path}: {exc}") from None
    plots: list[RawPlot] = []
    offset = 0
    while offset < len(blob):
        plot, offset = _read_plot(blob, offset, path)
        plots.append(plot)
        while offset < len(blob) and blob[offset : offset + 1] in (b"\n", b"\r", b" "):
            offset += 1
    if not plots:
        raise DataError(f"raw file {path} is empty; the simulator wrote no results")
    return plots


def _read_plot(blob: bytes, offset: int, path: Path) -> tuple[RawPlot, int]:
    header: dict[str, str] = {}
    variables: list[str] = []
    in_variables = False
    while True:
        end = blob.find(b"\n", offset)
        if end < 0:
            raise DataError(f"raw file {path} ends inside a header (byte {offset}); the simulator was interrupted")
        line = blob[offset:end].decode("latin-1").rstrip("\r")
        offset = end + 1
        key = line.split(":", 1)[0].strip().lower()
        if key in (BINARY.lower(), VALUES.lower()):
            break
        if key == VARIABLES.lower():
            in_variables = True
        elif in_variables and line[:1] in ("\t", " "):
            fields = line.split()
            if len(fields) < 2:
                raise DataError(f"raw file {path}: malformed variable line {shown(line)}")
            variables.append(fields[1].lower())
        elif ":" in line:
            in_variables = False
            header[key] = line.split(":", 1)[1].strip()
    try:
        num_vars, num_points = int(header[NUM_VARIABLES.lower()]), int(header[NUM_POINTS.lower()])
    except (KeyError, ValueError):
        raise DataError(f"raw file {path}: header lacks a valid 'No. Variables' or 'No. Points'") from None
    if num_vars < 1 or num_points < 0:
        raise DataError(f"raw file {path}: header announces {num_vars} variables and {num_points} points")
    if len(variables) != num_vars:
        raise DataError(f"raw file {path}: header announces {num_vars} variables but lists {len(variables)}")
    complex_values = "complex" in header.get(FLAGS.lower(), "real").lower()
    width = num_vars * (2 if complex_values else 1)
    if key == BINARY.lower():
        size = num_points * width * 8
        if offset + size > len(blob):
            raise DataError(
                f"raw file {path} is truncated: {num_points} points need {size} bytes, {len(blob) - offset} are there"
            )
        values = np.frombuffer(blob, dtype="<f8", count=num_points * width, offset=offset).reshape(num_points, width)
        offset += size
    else:
        values, offset = _ascii_values(blob, offset, num_points, num_vars, complex_values, path)
    data = values[:, 0::2] + 1j * values[:, 1::2] if complex_values else values.copy()
    return RawPlot(header.get(PLOTNAME.lower(), ""), tuple(variables), data), offset


def _ascii_values(
    blob: bytes, offset: int, num_points: int, num_vars: int, complex_values: bool, path: Path
) -> tuple[np.ndarray, int]:
    """Parse ``Values:`` text: per point, an index then one number (``re,im`` if complex) per variable."""
    tokens: list[str] = []
    needed = num_points * (num_vars + 1)
    while len(tokens) < needed:
        end = blob.find(b"\n", offset)
        end = len(blob) if end < 0 else end
        if offset >= len(blob):
            raise DataError(f"raw file {path} is truncated: fewer than {num_points} points of values")
        tokens.extend(blob[offset:end].decode("latin-1").split())
        offset = end + 1
    step = num_vars + 1  # each point: its index, then the values
    numbers = [tokens[k * step + 1 : (k + 1) * step] for k in range(num_points)]
    try:
        if not complex_values:
            return np.array(numbers, dtype=np.float64).reshape(num_points, num_vars), offset
        flat = [[float(part) for cell in row for part in _pair(cell)] for row in numbers]
        return np.array(flat, dtype=np.float64).reshape(num_points, 2 * num_vars), offset
    except ValueError as exc:
        raise DataError(f"raw file {path}: a value is not a number ({shown(str(exc))})") from None


def _pair(cell: str) -> list[str]:
    """``"re,im"`` of a complex value as its two parts."""
    parts = cell.split(",")
    if len(parts) != 2:
        raise ValueError(f"{cell} is not re,im")
    return parts


def write_raw(
    path: str | os.PathLike[str], plots: list[RawPlot], *, title: str = "kirchhoffnet", date: str | None = None
) -> Path:
    """Write real transient ``plots`` as one binary SPICE3 raw file, atomically.

    Args:
        path: the file (its folder is created).
        plots: each with ``time`` as its first variable, then voltages (``v(...)``) or currents
            (``i(...)``); ``data`` (points, variables) of finite reals, times non-decreasing.
        title: the ``Title`` line.
        date: the ``Date`` line; default now (UTC), in the form ngspice writes.

    Raises:
        ConfigError: a plot that no simulator would read back as written.
    """
    stamp = date or datetime.now(UTC).strftime("%a %b %d %H:%M:%S %Y")
    if not plots:
        raise ConfigError("a raw file needs at least one plot")
    blob = b"".join(_plot_bytes(plot, _header_text(title), _header_text(stamp)) for plot in plots)
    return write_bytes_atomic(path, blob)


def write_bytes_atomic(path: str | os.PathLike[str], blob: bytes) -> Path:
    """``blob`` into ``path`` through [`atomic_write`][kirchhoffnet.io.atomic_write]: never a half-written raw file."""

    def write(tmp: Path) -> None:
        tmp.write_bytes(blob)

    return atomic_write(path, write)


def checked_data(plot: RawPlot) -> np.ndarray:
    """``plot.data`` as float64 if a writer may write it (time first, finite, times in order), else ConfigError."""
    data = np.asarray(plot.data)
    if np.iscomplexobj(data) or data.ndim != 2 or data.shape[1] != len(plot.variables):
        raise ConfigError(
            f"raw plot {plot.name!r}: data must be real (points, {len(plot.variables)}) values, got {data.dtype} "
            f"{data.shape}"
        )
    if not plot.variables or plot.variables[0].lower() != "time":
        raise ConfigError(f"raw plot {plot.name!r}: the first variable must be time, got {plot.variables[:1]}")
    data = require_finite(f"raw plot {plot.name!r}", data.astype(np.float64), "", ConfigError)
    if len(data) == 0 or bool((np.diff(data[:, 0]) < 0).any()):
        raise ConfigError(f"raw plot {plot.name!r}: needs at least one point and non-decreasing times")
    for name in plot.variables:
        _variable_name(name)
    return data


def _plot_bytes(plot: RawPlot, title: str, date: str) -> bytes:
    data = checked_data(plot)
    lines = [f"{TITLE}: {title}", f"{DATE}: {date}", f"{PLOTNAME}: {_header_text(plot.name)}", f"{FLAGS}: real"]
    lines += [f"{NUM_VARIABLES}: {len(plot.variables)}", f"{NUM_POINTS}: {len(data)}", f"{VARIABLES}:"]
    lines += [f"\t{k}\t{name}\t{_quantity(k, name)}" for k, name in enumerate(plot.variables)]
    header = "\n".join([*lines, f"{BINARY}:"]) + "\n"
    return header.encode("ascii") + np.ascontiguousarray(data, dtype="<f8").tobytes()


def _header_text(text: str) -> str:
    """``text`` as one printable ASCII header line: a raw file's header is read line by line."""
    if not text.isascii() or not text.isprintable():
        raise ConfigError(f"raw-file header text must be printable ASCII on one line, got {shown(text)}")
    return text


def _variable_name(name: str) -> str:
    """A variable name the reader splits back out: non-empty, ASCII, without white space."""
    if not name or not name.isascii() or not name.isprintable() or any(c.isspace() for c in name):
        raise ConfigError(f"raw-file variable name {shown(name)} must be non-empty printable ASCII without spaces")
    return name


def _quantity(index: int, name: str) -> str:
    """The variable's type column: ngspice and viewers scale and label axes by it."""
    if index == 0:
        return "time"
    return "current" if name.lower().startswith("i(") else "voltage"

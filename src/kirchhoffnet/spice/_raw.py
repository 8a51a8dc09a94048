"""Reading SPICE raw files (the ``-r out.raw`` output of ngspice), binary or ASCII.

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
from pathlib import Path

import numpy as np

from kirchhoffnet.errors import DataError, shown


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
        if key in ("binary", "values"):
            break
        if key == "variables":
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
        num_vars, num_points = int(header["no. variables"]), int(header["no. points"])
    except (KeyError, ValueError):
        raise DataError(f"raw file {path}: header lacks a valid 'No. Variables' or 'No. Points'") from None
    if num_vars < 1 or num_points < 0:
        raise DataError(f"raw file {path}: header announces {num_vars} variables and {num_points} points")
    if len(variables) != num_vars:
        raise DataError(f"raw file {path}: header announces {num_vars} variables but lists {len(variables)}")
    complex_values = "complex" in header.get("flags", "real").lower()
    width = num_vars * (2 if complex_values else 1)
    if key == "binary":
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
    return RawPlot(header.get("plotname", ""), tuple(variables), data), offset


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

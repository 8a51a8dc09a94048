"""Waveform files of simulated node voltages: SPICE3 raw (for ngspice and waveform viewers) or CSV.

The file's suffix picks the format. A raw file holds every slice of a trajectory as its own plot;
CSV has no notion of plots, so a trajectory of several slices becomes one ``<stem>.slice<k>.csv``
per slice (the naming ``kirchhoffnet spice export`` uses for netlists).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kirchhoffnet.errors import ConfigError
from kirchhoffnet.io import write_text_atomic
from kirchhoffnet.spice._raw import RawPlot, checked_data, write_raw
from kirchhoffnet.spice.netlist import node_name

FORMATS = (".raw", ".csv")
TRANSIENT = "Transient Analysis"


def node_names(nodes: int, samples: int = 1, sample: int = 0) -> list[str]:
    """``v(n1) .. v(nN)``, the names ngspice gives the nodes; ``v(n1_<s>)`` where a file holds several samples."""
    suffix = f"_{sample}" if samples > 1 else ""
    return [f"v({node_name(n, suffix)})" for n in range(1, nodes + 1)]


def waveform_format(path: str | os.PathLike[str]) -> str:
    """``.raw`` or ``.csv``: the format ``path``'s suffix selects (ConfigError for any other)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"waveform file {path} must end in .raw or .csv, got {suffix or 'no suffix'!r}")
    return suffix


def write_waveforms(
    path: str | os.PathLike[str], times: Any, voltages: Any, names: Sequence[str] | None = None
) -> Path:
    """Write one waveform: (T,) times in s and (T, N) voltages in V, as raw or CSV by ``path``'s suffix.

    Args:
        path: ``*.raw`` (binary SPICE3, one transient plot) or ``*.csv`` (header ``time_s,v(n1),...``).
        times: (T,) array or tensor.
        voltages: (T, N) array or tensor.
        names: the N column names; default ``v(n1) .. v(nN)``.

    Raises:
        ConfigError: another suffix, mismatched shapes, non-finite values or decreasing times.
    """
    return write_trajectory(path, [(times, voltages)], names=names)[0]


def write_trajectory(
    path: str | os.PathLike[str], slices: Sequence[tuple[Any, Any]], names: Sequence[str] | None = None
) -> list[Path]:
    """Write the output of [`kirchhoffnet.trajectory`][kirchhoffnet.trajectory]: per slice ``(t, v)``, v (T, N) or (T,
    B, N).

    With B samples the columns are ``v(n<node>_<sample>)``, sample-major. Returns the files written.
    """
    target = Path(path)
    suffix = waveform_format(target)
    plots = [_plot(k, times, voltages, names) for k, (times, voltages) in enumerate(slices)]
    if suffix == ".raw":
        return [write_raw(target, plots)]
    if len(plots) == 1:
        return [_write_csv(target, plots[0])]
    return [_write_csv(target.with_name(f"{target.stem}.slice{k}{target.suffix}"), p) for k, p in enumerate(plots)]


def _plot(k: int, times: Any, voltages: Any, names: Sequence[str] | None) -> RawPlot:
    t = _array(times)
    v = _array(voltages)
    if v.ndim == 3:  # (T, B, N) → (T, B·N), sample-major
        samples = v.shape[1]
        default = [name for s in range(samples) for name in node_names(v.shape[2], samples, s)]
        v = v.reshape(len(v), -1)
    else:
        default = node_names(v.shape[1]) if v.ndim == 2 else []
    if t.ndim != 1 or v.ndim != 2 or len(t) != len(v):
        raise ConfigError(
            f"waveform of slice {k}: times must be (T,) and voltages (T, N) or (T, B, N), got "
            f"{t.shape} and {_array(voltages).shape}"
        )
    columns = list(default if names is None else names)
    if len(columns) != v.shape[1]:
        raise ConfigError(f"waveform of slice {k}: {v.shape[1]} voltage columns but {len(columns)} names")
    return RawPlot(TRANSIENT, ("time", *columns), np.column_stack([t, v]))


def _array(values: Any) -> np.ndarray:
    detach = getattr(values, "detach", None)
    if detach is not None:  # a torch tensor, possibly on a GPU
        values = detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":  # complex, text, objects: nothing a transient waveform holds
        raise ConfigError(f"waveform values must be real numbers, got {array.dtype} values")
    return array.astype(np.float64)


def _write_csv(path: Path, plot: RawPlot) -> Path:
    """``time_s`` then the variables, one row per point; repr-exact floats so the file round-trips."""
    data = checked_data(plot)
    rows = [",".join(("time_s", *plot.variables[1:]))]
    rows += [",".join(repr(float(x)) for x in row) for row in data]
    return write_text_atomic(path, "\n".join(rows) + "\n")

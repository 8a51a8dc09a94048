"""Figures for every area that draws (tasks, hardware, spice, ...): built with matplotlib's object API
(`Figure`, never pyplot), so that drawing neither switches a notebook user's
backend nor leaves figures open in pyplot's global list; written to files atomically in a separate step.

Not imported by [`kirchhoffnet.io`][kirchhoffnet.io] itself, so that reading checkpoints never loads matplotlib.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure

from kirchhoffnet.errors import ConfigError, shown
from kirchhoffnet.io._atomic import atomic_write
from kirchhoffnet.io.paths import check_out_file


def new_figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **subplots: Any) -> tuple[Figure, Any]:
    """A figure of its own and its axes (``Figure.subplots``' arguments): displayed by a notebook when
    returned, saved with `save_figure`."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **subplots)


def one_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes, bool]:
    """The user's ``ax`` and its figure, or a new figure: also whether the figure is ours to lay out."""
    if ax is None:
        fig, ax = new_figure(figsize)
        return fig, ax, True
    return ax.get_figure(root=True), ax, False  # type: ignore[return-value]


def check_figure_file(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """``path`` if a figure can be written there in the format its suffix names (no suffix: PNG), checked
    before any work, so that a typo in the suffix does not throw away a long computation at the end."""
    target = check_out_file(path, what)
    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = target.suffix.lstrip(".").lower()
    if suffix and suffix not in formats:
        raise ConfigError(
            f"{what} {shown(str(target))}: matplotlib cannot write {shown(suffix)} figures; "
            f"use one of: {', '.join(sorted(formats))}"
        )
    return target


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write a figure atomically, in the format its file's suffix names (PNG without one)."""
    target = check_figure_file(path, "figure")
    return atomic_write(target, lambda tmp: fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", dpi=120))

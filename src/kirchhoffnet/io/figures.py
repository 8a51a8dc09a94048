"""Writing matplotlib figures atomically, for every area that draws (tasks, hardware, spice, ...).

Not imported by :mod:`kirchhoffnet.io` itself, so that reading checkpoints never loads matplotlib.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is assumed
import matplotlib.pyplot as plt
from matplotlib.backend_bases import FigureCanvasBase

from kirchhoffnet.errors import ConfigError, shown
from kirchhoffnet.io._atomic import atomic_write
from kirchhoffnet.io.paths import check_out_file


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


def save_figure(fig: plt.Figure, path: str | os.PathLike[str]) -> Path:
    """Write a figure atomically (PNG by the file's suffix) and close it."""
    try:
        target = check_figure_file(path, "figure")
    except ConfigError:
        plt.close(fig)
        raise
    try:
        return atomic_write(target, lambda tmp: fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", dpi=120))
    finally:
        plt.close(fig)

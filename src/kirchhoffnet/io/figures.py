"""Writing matplotlib figures atomically, for every area that draws (tasks, hardware, spice, ...).

Not imported by :mod:`kirchhoffnet.io` itself, so that reading checkpoints never loads matplotlib.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is assumed
import matplotlib.pyplot as plt

from kirchhoffnet.io.atomic import atomic_write


def save_figure(fig: plt.Figure, path: str | os.PathLike[str]) -> Path:
    """Write a figure atomically (PNG by the file's suffix) and close it."""
    target = Path(path)
    try:
        return atomic_write(target, lambda tmp: fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", dpi=120))
    finally:
        plt.close(fig)

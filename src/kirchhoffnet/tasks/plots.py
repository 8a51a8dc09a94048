"""Figures people would rather look at than read: samples against data, densities."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is assumed
import matplotlib.pyplot as plt
import numpy as np

from kirchhoffnet.io.figures import save_figure


def samples_vs_data(
    data: np.ndarray,
    samples: np.ndarray,
    density: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    path: str | os.PathLike[str],
    title: str,
) -> Path:
    """Data, model samples and (optionally) the model density side by side, on shared axes."""
    panels = 3 if density is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.2), sharex=True, sharey=True)
    limits = np.percentile(np.concatenate([data, samples]), [0.5, 99.5], axis=0)
    pad = 0.1 * (limits[1] - limits[0])
    for ax, points, name in zip(axes, (data, samples), ("data", "KirchhoffNet samples"), strict=False):
        ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.4)
        ax.set_title(name)
    if density is not None:
        xx, yy, log_p = density
        axes[2].pcolormesh(xx, yy, np.exp(log_p), shading="auto", cmap="viridis")
        axes[2].set_title("model density")
    for ax in axes:
        ax.set_xlim(limits[0, 0] - pad[0], limits[1, 0] + pad[0])
        ax.set_ylim(limits[0, 1] - pad[1], limits[1, 1] + pad[1])
        ax.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)

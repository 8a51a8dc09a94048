"""Figures people would rather look at than read: samples against data, densities, losses, images.

Each returns a `Figure` (a notebook shows it; `save_figure`
writes it); those of one panel draw into a caller's ``ax`` when given one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kirchhoffnet.io.figures import new_figure, one_axes

SCATTER_POINTS = 20_000
"""Points drawn per scatter panel: more only blot the panel, and 10^6 of them cost ~100 MB of memory."""


def samples_vs_data(
    data: np.ndarray,
    samples: np.ndarray,
    density: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    title: str,
) -> Figure:
    """Data, model samples and (optionally) the model density side by side, on shared axes."""
    panels = 3 if density is not None else 2
    fig, axes = new_figure((4.2 * panels, 4.2), 1, panels, sharex=True, sharey=True)
    limits = np.percentile(np.concatenate([data, samples]), [0.5, 99.5], axis=0)
    pad = 0.1 * (limits[1] - limits[0])
    for ax, points, name in zip(axes, (data, samples), ("data", "KirchhoffNet samples"), strict=False):
        shown = points[:SCATTER_POINTS]  # i.i.d. draws: the first ones are a fair subsample
        ax.scatter(shown[:, 0], shown[:, 1], s=1, alpha=0.4)
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
    return fig


def loss_curves(history: dict[str, list[Any]], title: str, ax: Axes | None = None) -> Figure:
    """Training and validation loss per epoch (validation only where it was measured)."""
    fig, ax, ours = one_axes(ax, (6, 4))
    epochs = history["epoch"]
    ax.plot(epochs, _as_float(history["train_loss"]), label="train")
    measured = [k for k, v in enumerate(history["val_loss"]) if v is not None]
    if measured:
        values = _as_float([history["val_loss"][k] for k in measured])
        ax.plot([epochs[k] for k in measured], values, "o-", label="validation")
        validations = history.get("validation") or [None] * len(epochs)
        reference = [(validations[k] or {}).get("reference_loss") for k in measured]  # train.reference_solver
        if any(value is not None for value in reference):
            ax.plot([epochs[k] for k in measured], _as_float(reference), "s--", label="validation, reference solve")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    if ours:
        fig.tight_layout()
    return fig


def _as_float(values: list[float | None]) -> list[float]:
    return [np.nan if v is None else v for v in values]


def confusion_matrix(matrix: np.ndarray, title: str, ax: Axes | None = None) -> Figure:
    """Counts of true class (rows) against predicted class (columns), with the counts written in."""
    fig, ax, ours = one_axes(ax, (6, 5.4))
    image = ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        shade = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(int(count)), ha="center", va="center", fontsize=7, color=shade)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    if ours:
        fig.tight_layout()
    return fig


def predicted_vs_true(truth: np.ndarray, predicted: np.ndarray, title: str, ax: Axes | None = None) -> Figure:
    """Scatter of predictions against targets, with the identity line a perfect model would sit on."""
    fig, ax, ours = one_axes(ax, (4.8, 4.8))
    ax.scatter(truth, predicted, s=6, alpha=0.5)
    lo, hi = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="ideal")
    ax.set_xlabel("true value")
    ax.set_ylabel("predicted value")
    ax.set_title(title)
    ax.legend()
    ax.set_aspect("equal")
    if ours:
        fig.tight_layout()
    return fig


def density_maps(
    extent: float,
    maps: list[tuple[str, np.ndarray]],
    samples: np.ndarray,
    title: str,
) -> Figure:
    """Heat maps of densities on [-extent, extent]² (grid (G, G), rows = y) and a sample histogram."""
    panels = len(maps) + 1
    fig, grid = new_figure((4.2 * panels, 4.2), 1, panels, sharex=True, sharey=True, squeeze=False)
    axes = grid[0]
    box = [-extent, extent, -extent, extent]
    for ax, (name, density) in zip(axes, maps, strict=False):
        ax.imshow(density, origin="lower", extent=box, cmap="viridis", aspect="equal")
        ax.set_title(name)
    bins = np.linspace(-extent, extent, 120)
    axes[-1].hist2d(samples[:, 0], samples[:, 1], bins=[bins, bins], cmap="viridis")
    axes[-1].set_title("model samples")
    axes[-1].set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def image_grid(images: np.ndarray, title: str, ax: Axes | None = None) -> Figure:
    """Images (N, C, H, W) in [0, 1] tiled into a square grid."""
    count, channels, height, width = images.shape
    side = int(np.ceil(np.sqrt(count)))
    canvas = np.ones((side * (height + 1), side * (width + 1), channels))
    for k in range(count):
        row, col = divmod(k, side)
        canvas[row * (height + 1) : row * (height + 1) + height, col * (width + 1) : col * (width + 1) + width] = (
            images[k].transpose(1, 2, 0)
        )
    fig, ax, ours = one_axes(ax, (6, 6))
    ax.imshow(canvas.squeeze(-1) if channels == 1 else canvas, cmap="gray" if channels == 1 else None, vmin=0, vmax=1)
    ax.axis("off")
    ax.set_title(title)
    if ours:
        fig.tight_layout()
    return fig

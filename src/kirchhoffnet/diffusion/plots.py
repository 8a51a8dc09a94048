"""Figures of a diffusion run: samples against the data, KL against programming noise, losses, images.

Each returns a `Figure`; those of one panel draw into a caller's ``ax`` when given one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kirchhoffnet.io.figures import new_figure, one_axes


def sample_panels(panels: Mapping[str, np.ndarray], limit: float | None = None) -> Figure:
    """One scatter panel per named point set (N, 2), on shared square axes: ±``limit``, by default the first
    panel's (the reference's) extent rounded up to a half, at least ±1.5."""
    if limit is None:
        extent = float(np.abs(next(iter(panels.values()))).max())
        limit = max(1.5, math.ceil(2.2 * extent) / 2)
    fig, axes = new_figure((3.2 * len(panels), 3.4), 1, len(panels), squeeze=False)
    for ax, (title, points) in zip(axes[0], panels.items(), strict=True):
        ax.scatter(points[:, 0], points[:, 1], s=0.5, alpha=0.3)
        ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal", title=title)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def kl_vs_noise(
    curves: Mapping[str, tuple[Sequence[float], Sequence[Sequence[float | None]]]], ax: Axes | None = None
) -> Figure:
    """KL against programming noise σ: one line per model (mean over chips) with each chip as a dot.

    Args:
        curves: name → (σ values, KL per chip for each σ).
    """
    fig, ax, ours = one_axes(ax, (4.8, 3.6))
    everything: list[float] = []
    for name, (sigmas, per_chip) in curves.items():
        values = [[np.nan if k is None else k for k in kls] for kls in per_chip]  # None: no sample in range
        means = [float(np.mean(kls)) for kls in values]
        everything += [v for kls in values for v in kls]
        (line,) = ax.plot(sigmas, means, marker="o", label=name)
        for sigma, kls in zip(sigmas, values, strict=True):
            ax.scatter([sigma] * len(kls), kls, s=8, color=line.get_color(), alpha=0.4)
    ax.set(xlabel="programming noise σ (relative)", ylabel="KL (pooled 1-D histogram)")
    finite = np.asarray(everything)[np.isfinite(everything)]
    if finite.size and finite.min() > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if ours:
        fig.tight_layout()
    return fig


def loss_curve(losses: Sequence[float], window: int = 200, ax: Axes | None = None) -> Figure:
    """Training loss with its running mean."""
    fig, ax, ours = one_axes(ax, (4.8, 3.2))
    values = np.asarray(losses)
    ax.plot(values, alpha=0.25, lw=0.5)
    if len(values) >= window:
        ax.plot(np.arange(window - 1, len(values)), np.convolve(values, np.ones(window) / window, mode="valid"))
    ax.set(xlabel="step", ylabel="denoising score-matching loss")
    if ours:
        fig.tight_layout()
    return fig


def image_rows(rows: Mapping[str, np.ndarray]) -> Figure:
    """One labelled row of images (N, H, W) in [0, 1] per named set (solvers × classes side by side; a
    sample grid of one model is `kirchhoffnet.tasks.plots.image_grid`)."""
    columns = max(len(images) for images in rows.values())
    fig, axes = new_figure((0.8 * columns, 0.9 * len(rows)), len(rows), columns, squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c in range(columns):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(name, fontsize=7, loc="left")
    fig.tight_layout()
    return fig


def latent_scatter(
    test: np.ndarray,
    test_labels: np.ndarray,
    generated: Mapping[str, np.ndarray],
    labels: np.ndarray,
) -> Figure:
    """Test latents and each solver's generated latents, coloured by class."""
    panels = {"test latents": (test, test_labels), **{name: (z, labels) for name, z in generated.items()}}
    fig, axes = new_figure((3.2 * len(panels), 3.4), 1, len(panels), squeeze=False)
    limit = float(np.abs(test).max()) * 1.3
    for ax, (title, (points, classes)) in zip(axes[0], panels.items(), strict=True):
        ax.scatter(points[:, 0], points[:, 1], s=0.5, alpha=0.4, c=classes, cmap="tab10", vmin=0, vmax=9)
        ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal", title=title)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def guidance_sweep(
    strengths: Sequence[float],
    accuracy_per_class: Sequence[Sequence[float]],
    names: Sequence[str],
    ax: Axes | None = None,
) -> Figure:
    """Judge accuracy per class against the classifier-free guidance strength."""
    fig, ax, ours = one_axes(ax, (4.8, 3.4))
    values = np.asarray(accuracy_per_class)
    for c, name in enumerate(names):
        ax.plot(strengths, values[:, c], marker="o", label=f"class {name}")
    ax.plot(strengths, values.mean(axis=1), color="black", lw=2, label="mean")
    ax.set(xlabel="guidance strength w", ylabel="judge accuracy on generated images", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if ours:
        fig.tight_layout()
    return fig

"""Histogram KL divergences between generated and reference samples (the RRAM diffusion paper's metric).

``kl_pooled``: every coordinate of every sample pooled into one 1-D histogram over [−4, 4] with 50 bins;
``kl_2d``: a 2-D histogram of the first two coordinates. Both are KL(generated ‖ reference) of the
normalised bin masses, with 1e-10 added to every bin so that empty reference bins give a large finite
penalty instead of infinity (the original evaluation's convention). Two independent 10,000-sample draws
of the ring score ≈ 0.001 pooled: that is the metric's noise floor.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.errors import DataError

EPSILON = 1e-10


def _as_array(points: Tensor | np.ndarray, name: str) -> np.ndarray:
    array = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if array.ndim != 2 or len(array) == 0:
        raise DataError(f"{name} must be a non-empty (N, D) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{name} holds {int((~np.isfinite(array)).sum())} NaN or infinite values")
    return array.astype(np.float64)


def kl_from_counts(generated: np.ndarray, reference: np.ndarray) -> float:
    """KL(p ‖ q) of two histograms (any shape) after normalising and adding ``EPSILON`` per bin."""
    if generated.sum() <= 0 or reference.sum() <= 0:
        raise DataError("a histogram is empty: every sample fell outside the histogram range")
    p = generated.ravel() / generated.sum() + EPSILON
    q = reference.ravel() / reference.sum() + EPSILON
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def kl_pooled(
    generated: Tensor | np.ndarray, reference: Tensor | np.ndarray, bins: int = 50, limit: float = 4.0
) -> float:
    """KL over one 1-D histogram of all coordinates pooled, on [−limit, limit].

    Shapes:
        generated: (N, D); reference: (M, D).
    """
    gen, ref = _as_array(generated, "generated samples"), _as_array(reference, "reference samples")
    edges = np.linspace(-limit, limit, bins + 1)
    return kl_from_counts(np.histogram(gen.ravel(), edges)[0], np.histogram(ref.ravel(), edges)[0])


def kl_2d(generated: Tensor | np.ndarray, reference: Tensor | np.ndarray, bins: int = 50, limit: float = 4.0) -> float:
    """KL over a 2-D histogram of the first two coordinates on [−limit, limit]².

    Shapes:
        generated: (N, D ≥ 2); reference: (M, D ≥ 2).
    """
    gen, ref = _as_array(generated, "generated samples"), _as_array(reference, "reference samples")
    if gen.shape[1] < 2 or ref.shape[1] < 2:
        raise DataError(f"a 2-D histogram needs at least 2 coordinates, got {gen.shape[1]} and {ref.shape[1]}")
    edges = np.linspace(-limit, limit, bins + 1)

    def counts(a: np.ndarray) -> np.ndarray:
        return np.histogram2d(a[:, 0], a[:, 1], bins=[edges, edges])[0]

    return kl_from_counts(counts(gen), counts(ref))


def kl_or_none(metric: Callable[[Tensor, Tensor], float], samples: Tensor, reference: Tensor) -> float | None:
    """The metric, or None (null in JSON) when no sample falls inside the histogram's range."""
    try:
        return metric(samples, reference)
    except DataError:
        return None


def kl_report(samples: Tensor, reference: Tensor) -> dict[str, float | None]:
    """Pooled and 2-D KL against ``reference`` (None where no sample is in range) and radius statistics."""
    radius = samples.norm(dim=1)
    return {
        "kl_pooled": kl_or_none(kl_pooled, samples, reference),
        "kl_2d": kl_or_none(kl_2d, samples, reference),
        "radius_mean": float(radius.mean()),
        "radius_std": float(radius.std()),
    }

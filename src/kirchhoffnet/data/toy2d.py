"""The 2-D toy distributions of the CNF literature, as used by the KirchhoffNet flow experiments.

Each sampler draws from a NumPy generator, so a seed fixes the data exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.datasets import make_circles, make_moons, make_swiss_roll

from kirchhoffnet.errors import ConfigError, unknown_choice


def _seed_of(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def twomoon(n: int, rng: np.random.Generator) -> np.ndarray:
    return make_moons(n_samples=n, noise=0.1, random_state=_seed_of(rng))[0]


def circle(n: int, rng: np.random.Generator) -> np.ndarray:
    return make_circles(n_samples=n, noise=0.06, factor=0.5, random_state=_seed_of(rng))[0]


def swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    points = make_swiss_roll(n_samples=n, noise=1.0, random_state=_seed_of(rng))[0]
    return points[:, [0, 2]] / 5.0


def eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance-ish mixture: 8 centres on a circle of radius 4, std 0.5, scaled by 1/1.414."""
    angles = np.arange(8) * np.pi / 4
    centres = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points = centres[rng.integers(0, 8, n)] + 0.5 * rng.standard_normal((n, 2))
    return points / 1.414


def pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    """Five arms: radial std 0.3, tangential std 0.1, twisted by exp(radius) at rate 0.25, scaled ×2.

    Each point (r, t) is turned by −angle (the row vector times the rotation matrix), as in the generator
    the original KirchhoffNet checkpoints were trained on; turning by +angle gives its mirror image.
    """
    features = rng.standard_normal((n, 2)) * np.array([0.3, 0.1])
    features[:, 0] += 1.0
    arm = rng.integers(0, 5, n)
    angles = 2 * np.pi * arm / 5 + 0.25 * np.exp(features[:, 0])
    cos, sin = np.cos(angles), np.sin(angles)
    rotated = np.stack([features[:, 0] * cos + features[:, 1] * sin, features[:, 1] * cos - features[:, 0] * sin], 1)
    return 2.0 * rotated


def two_spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two interleaved spirals of 1.5 turns, uniform jitter 0.5 along the arm, Gaussian noise 0.1."""
    arm_size = (n + 1) // 2
    turn = np.sqrt(rng.random((arm_size, 1))) * 3 * np.pi
    arm = np.hstack(
        [-np.cos(turn) * turn + rng.random((arm_size, 1)) * 0.5, np.sin(turn) * turn + rng.random((arm_size, 1)) * 0.5]
    )
    points = np.vstack([arm, -arm])[:n] / 3
    return points + 0.1 * rng.standard_normal(points.shape)


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, n) * 2
    x2 = x2 + (np.floor(x1) % 2)
    return np.stack([x1, x2], axis=1) * 2


def rings(n: int, rng: np.random.Generator) -> np.ndarray:
    """Four concentric rings of radii 3, 2.25, 1.5, 0.75, evenly spaced points, Gaussian noise 0.08."""
    counts = [n // 4] * 3
    counts = [n - sum(counts), *counts]
    parts = []
    for radius, count in zip((0.75, 1.5, 2.25, 3.0), counts, strict=True):
        angle = np.linspace(0, 2 * np.pi, count, endpoint=False)
        parts.append(radius * np.stack([np.cos(angle), np.sin(angle)], axis=1))
    points = np.concatenate(parts)[rng.permutation(n)]
    return points + 0.08 * rng.standard_normal((n, 2))


TOY_SETS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "twomoon": twomoon,
    "8gaussians": eight_gaussians,
    "pinwheel": pinwheel,
    "swissroll": swissroll,
    "circle": circle,
    "2spirals": two_spirals,
    "checkerboard": checkerboard,
    "rings": rings,
}


def sample_toy(name: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points (n, 2) float64 of the named 2-D distribution, reproducible by ``seed``."""
    if name not in TOY_SETS:
        raise ConfigError(unknown_choice("2-D data set", name, TOY_SETS))
    if int(n) < 1:
        raise ConfigError(f"number of samples must be positive, got {n}")
    return np.asarray(TOY_SETS[name](int(n), np.random.default_rng(seed)), dtype=np.float64)

"""Unnormalised 2-D target densities p(z) ∝ exp(−U(z)) for density matching.

U1–U4 are the test energies of Rezende & Mohamed, "Variational Inference with Normalizing
Flows" (ICML 2015), Table 1. U2–U4 do not depend on z1 far from the origin, so exp(−U) has
infinite mass on R²; the paper only plots them on [−4, 4]². To make them proper densities (a
KL divergence needs a normaliser) they get the wall ½·(z1/4.5)^10, which changes the density
inside |z1| ≤ 3 by under 1 % and at |z1| = 4 by 15 %, and confines the mass to |z1| ≲ 5.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from kirchhoffnet.errors import ConfigError, unknown_choice


def _w1(z1: Tensor) -> Tensor:
    return torch.sin(2.0 * math.pi * z1 / 4.0)


def _w2(z1: Tensor) -> Tensor:
    return 3.0 * torch.exp(-0.5 * ((z1 - 1.0) / 0.6) ** 2)


def _w3(z1: Tensor) -> Tensor:
    return 3.0 * torch.sigmoid((z1 - 1.0) / 0.3)


def _wall(z1: Tensor) -> Tensor:
    return 0.5 * (z1 / 4.5) ** 10


def _neg_logsumexp(a: Tensor, b: Tensor) -> Tensor:
    """−log(exp(−a) + exp(−b)) without overflow."""
    return -torch.logaddexp(-a, -b)


def u1(z: Tensor) -> Tensor:
    z1 = z[:, 0]
    ring = 0.5 * ((z.norm(dim=1) - 2.0) / 0.4) ** 2
    return ring + _neg_logsumexp(0.5 * ((z1 - 2.0) / 0.6) ** 2, 0.5 * ((z1 + 2.0) / 0.6) ** 2)


def u2(z: Tensor) -> Tensor:
    z1, z2 = z[:, 0], z[:, 1]
    return 0.5 * ((z2 - _w1(z1)) / 0.4) ** 2 + _wall(z1)


def u3(z: Tensor) -> Tensor:
    z1, z2 = z[:, 0], z[:, 1]
    w1 = _w1(z1)
    return _neg_logsumexp(0.5 * ((z2 - w1) / 0.35) ** 2, 0.5 * ((z2 - w1 + _w2(z1)) / 0.35) ** 2) + _wall(z1)


def u4(z: Tensor) -> Tensor:
    z1, z2 = z[:, 0], z[:, 1]
    w1 = _w1(z1)
    return _neg_logsumexp(0.5 * ((z2 - w1) / 0.4) ** 2, 0.5 * ((z2 - w1 + _w3(z1)) / 0.35) ** 2) + _wall(z1)


POTENTIALS: dict[str, Callable[[Tensor], Tensor]] = {"U1": u1, "U2": u2, "U3": u3, "U4": u4}


def potential(name: str) -> Callable[[Tensor], Tensor]:
    """The energy U (B, 2) → (B,) of a named target."""
    if name not in POTENTIALS:
        raise ConfigError(unknown_choice("potential", name, POTENTIALS))
    return POTENTIALS[name]


def log_normalizer(name: str, extent: float = 8.0, points: int = 1201) -> float:
    """log Z = log ∫ exp(−U) dz by the trapezoidal rule on [−extent, extent]², in float64.

    The integrands are smooth and negligible beyond |z| ≈ 6, so 1201² points give log Z to
    well under 1e-4.
    """
    axis = torch.linspace(-extent, extent, points, dtype=torch.float64)
    zz1, zz2 = torch.meshgrid(axis, axis, indexing="ij")
    energy = potential(name)(torch.stack([zz1.reshape(-1), zz2.reshape(-1)], dim=1)).reshape(points, points)
    weights = torch.ones(points, dtype=torch.float64)
    weights[0] = weights[-1] = 0.5
    step = float(axis[1] - axis[0])
    log_w = torch.log(weights[:, None] * weights[None, :]) + 2.0 * math.log(step)
    return float(torch.logsumexp((log_w - energy).reshape(-1), dim=0))

"""Task metrics as plain functions of a model, so that hardware studies need no task code.

A [`Metric`][kirchhoffnet.hardware.Metric] wraps ``model → float`` with its name and direction; the constructors here
close over held-out data. Any training pipeline can pass its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor

from kirchhoffnet._finite import require_finite
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.models import Flow, Network

if TYPE_CHECKING:
    from kirchhoffnet.hardware.analysis import Model


@dataclass(frozen=True)
class Metric:
    """A number measured on a model, evaluated without gradients.

    Attributes:
        name: e.g. ``nll_nats``, ``accuracy``, ``mse``.
        evaluate: ``model → float``.
        higher_is_better: direction, for yields and plots.
    """

    name: str
    evaluate: Callable[[Model], float]
    higher_is_better: bool = False

    def __call__(self, model: Model) -> float:
        with torch.no_grad():
            return float(self.evaluate(model))

    def nominal(self, model: Model) -> float:
        """The metric of the trained model itself: what every study is measured against, so a value
        that is not finite (a circuit whose outputs diverge) is an error, not a row of NaN."""
        return require_finite(
            f"the trained model's {self.name}",
            self(model),
            "its circuit's outputs are not finite; check the run's capacitances and solver settings",
        )


def _dtype(model: Model) -> torch.dtype:
    return next(model.parameters()).dtype


M = TypeVar("M", Flow, Network)


def _require(model: Model, kind: type[M], metric: str) -> M:
    if not isinstance(model, kind):
        raise ConfigError(f"metric {metric} needs a {kind.__name__}, got a {type(model).__name__}")
    return model


def _batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch: int) -> Tensor:
    return torch.cat([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def flow_nll(x: Tensor, batch: int = 2000) -> Metric:
    """Mean negative log-likelihood in nats of held-out points ``x`` (N, d) under a [`Flow`][kirchhoffnet.Flow]."""

    def nll(model: Model) -> float:
        flow = _require(model, Flow, "nll_nats")
        return float(-_batched(flow.log_prob, x.to(_dtype(flow)), batch).mean())

    return Metric("nll_nats", nll, higher_is_better=False)


def accuracy(x: Tensor, labels: Tensor, batch: int = 2000) -> Metric:
    """Fraction of inputs ``x`` (N, d) whose largest [`Network`][kirchhoffnet.Network] output is the label (N,)."""

    def acc(model: Model) -> float:
        net = _require(model, Network, "accuracy")
        logits = _batched(net, x.to(_dtype(net)), batch)
        return float((logits.argmax(1) == labels.to(logits.device)).double().mean())

    return Metric("accuracy", acc, higher_is_better=True)


def mse(x: Tensor, y: Tensor, batch: int = 2000) -> Metric:
    """Mean squared error of a [`Network`][kirchhoffnet.Network]'s outputs on ``x`` (N, d) against targets ``y`` (N,
    k)."""

    def error(model: Model) -> float:
        net = _require(model, Network, "mse")
        out = _batched(net, x.to(_dtype(net)), batch)
        return float(((out - y.to(out)) ** 2).mean())

    return Metric("mse", error, higher_is_better=False)


def energy_distance(a: Tensor, b: Tensor) -> float:
    """The energy distance 2E|A−B| − E|A−A'| − E|B−B'| between two samples (N, d), (M, d).

    Zero in expectation exactly when the distributions agree (Székely & Rizzo, 2013); a
    two-sample statistic that needs no density, so it scores samples drawn through a noisy
    circuit. The within-sample terms leave out the zero self-distances (U-statistics).
    """
    if min(len(a), len(b)) < 2:
        raise ConfigError(f"energy distance needs at least 2 points per sample, got {len(a)} and {len(b)}")
    a64, b64 = a.double(), b.double()

    def within(s: Tensor) -> Tensor:
        return torch.cdist(s, s).sum() / (len(s) * (len(s) - 1))

    return float(2 * torch.cdist(a64, b64).mean() - within(a64) - within(b64))

"""Process variation: Monte-Carlo over fabricated dies.

A die is the trained circuit with every device parameter and capacitor off by a random factor,

    p'_{k,e} = p_{k,e} · (1 + σ_edge·ξ_{k,e}) · (1 + σ_die·η_k),     c'_n = c_n · (1 + σ_cap·ζ_n),

with independent standard normal ξ (local mismatch, one per edge and parameter row), η (a
global shift of every device on the die, one per parameter row, shared by all slices) and ζ (one
per physical node capacitor, shared by all slices: slice k's node n is the same capacitor).
A capacitor factor is floored at 5 % of nominal so that a far Gaussian tail cannot make it
non-physical.

Trial t of a Monte-Carlo run draws from a generator seeded by ``(seed, t)`` alone: the same
seed gives identical trials, and sweeping σ reuses the same ξ, η, ζ (common random numbers), so a
curve of metric vs σ is smooth rather than jittered by resampling.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from kirchhoffnet._finite import finite_number
from kirchhoffnet._progress import bar
from kirchhoffnet.errors import ConfigError, SolverError, unknown_choice
from kirchhoffnet.hardware.analysis import Model, circuit_of, slices_of
from kirchhoffnet.hardware.metrics import Metric

CAPACITANCE_FLOOR = 0.05
"""Smallest capacitor factor a die can draw (the Gaussian is cut there)."""

KINDS = ("edge", "die", "capacitance", "all")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class Variation:
    """Relative standard deviations of a die's deviations from the trained circuit.

    Attributes:
        edge: local mismatch, per edge and parameter row (e.g. 0.05 for 5 %).
        die: global shift of every device's parameter row on the die.
        capacitance: per node capacitor.
    """

    edge: float = 0.0
    die: float = 0.0
    capacitance: float = 0.0

    def __post_init__(self) -> None:
        for name in ("edge", "die", "capacitance"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ConfigError(f"variation {name} is a relative standard deviation in [0, 1], got {value!r}")

    @classmethod
    def of(cls, kind: str, sigma: float) -> Variation:
        """One kind of variation (``edge``, ``die``, ``capacitance``, or ``all`` three) at ``sigma``."""
        if kind not in KINDS:
            raise ConfigError(unknown_choice("variation kind", kind, KINDS))
        if kind == "all":
            return cls(sigma, sigma, sigma)
        return replace(cls(), **{kind: sigma})

    @property
    def is_zero(self) -> bool:
        return self.edge == 0.0 and self.die == 0.0 and self.capacitance == 0.0


@dataclass
class Die:
    """The random factors of one die: per-slice (P, E) parameter factors and per-node capacitor factors."""

    params: list[torch.Tensor]
    capacitance: torch.Tensor


def draw_die(model: Model, variation: Variation, generator: torch.Generator) -> Die:
    """Draw one die's factors for ``model``'s circuit (always the same number of draws per circuit)."""
    circuit = circuit_of(model)
    rows = max(s.params.shape[0] for s in slices_of(circuit))
    shift = 1.0 + variation.die * torch.randn(rows, generator=generator, dtype=torch.float64)
    factors = []
    for piece in slices_of(circuit):
        shape = tuple(piece.params.shape)
        local = 1.0 + variation.edge * torch.randn(shape, generator=generator, dtype=torch.float64)
        factors.append(local * shift[: shape[0], None])
    width = max(circuit.widths)
    cap = (1.0 + variation.capacitance * torch.randn(width, generator=generator, dtype=torch.float64)).clamp(
        min=CAPACITANCE_FLOOR
    )
    return Die(factors, cap)


def apply_die(model: Model, die: Die) -> None:
    """Multiply ``model``'s parameters and capacitances by ``die``'s factors, in place."""
    with torch.no_grad():
        for piece, factor in zip(slices_of(model), die.params, strict=True):
            piece.params.mul_(factor.to(piece.params))
            cap = piece.capacitance
            cap.mul_(die.capacitance[: cap.shape[0]].to(cap))  # in place: the KCL cache sees the change


def perturbed(model: Model, variation: Variation, generator: torch.Generator | int) -> Model:
    """A copy of ``model`` fabricated as one random die (``model`` itself is untouched)."""
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    die = draw_die(model, variation, generator)
    copied = copy.deepcopy(model)
    apply_die(copied, die)
    return copied


def trial_seed(seed: int, trial: int) -> int:
    """The generator seed of trial ``trial``: depends on (seed, trial) only."""
    return int(np.random.SeedSequence([int(seed), int(trial)]).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass
class MonteCarloResult:
    """A metric's distribution over dies.

    Attributes:
        metric: the metric's name. higher_is_better: its direction.
        variation: the σ's used. seed: the base seed. nominal: the metric of the trained circuit.
        values: one per trial, in trial order; a die whose solve failed counts as the worst value
            (``inf`` or ``-inf``) and in ``failed``.
        mean, std, quantiles: over the dies that solved ({"0.05": ..., "0.5": ..., ...}).
        threshold: the pass mark, if any. yield_fraction: dies meeting it (failed ones fail).
    """

    metric: str
    higher_is_better: bool
    variation: Variation
    seed: int
    nominal: float
    values: list[float]
    failed: int
    mean: float
    std: float
    quantiles: dict[str, float]
    threshold: float | None = None
    yield_fraction: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("variation", "values")}
        out["variation"] = {
            "edge": self.variation.edge,
            "die": self.variation.die,
            "capacitance": self.variation.capacitance,
        }
        out["values"] = [v if math.isfinite(v) else None for v in self.values]  # JSON has no infinity
        for key in ("nominal", "mean", "std"):  # NaN when every die failed: no statistic, not a lost result
            out[key] = _finite_or_none(out[key])
        out["quantiles"] = {q: _finite_or_none(v) for q, v in self.quantiles.items()}
        return out


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def check_threshold(threshold: float | None) -> float | None:
    """A yield's pass mark must be a finite number: ``v >= nan`` is false for every die."""
    return None if threshold is None else finite_number("threshold", threshold)


def summarize(
    metric: Metric,
    variation: Variation,
    seed: int,
    nominal: float,
    values: Sequence[float],
    threshold: float | None,
) -> MonteCarloResult:
    """Statistics of per-trial ``values`` (non-finite ones are failed dies)."""
    finite = np.array([v for v in values if math.isfinite(v)], dtype=np.float64)
    stats = finite if finite.size else np.array([math.nan])
    passed = None
    if threshold is not None:
        ok = [(v >= threshold) if metric.higher_is_better else (v <= threshold) for v in values]
        passed = float(np.mean(ok)) if values else math.nan
    return MonteCarloResult(
        metric=metric.name,
        higher_is_better=metric.higher_is_better,
        variation=variation,
        seed=seed,
        nominal=nominal,
        values=list(values),
        failed=len(values) - int(finite.size),
        mean=float(stats.mean()),
        std=float(stats.std(ddof=1)) if finite.size > 1 else 0.0,
        quantiles={f"{q:g}": float(np.quantile(stats, q)) for q in QUANTILES},
        threshold=threshold,
        yield_fraction=passed,
    )


def evaluate_trials(
    model: Model,
    metric: Metric,
    make_trial: Callable[[Model, int], Model],
    trials: Iterable[int],
    label: str,
    progress: bool,
) -> list[float]:
    """``metric(make_trial(model, t))`` for each trial; a solver failure scores the worst value."""
    worst = -math.inf if metric.higher_is_better else math.inf
    values = []
    for t in bar(list(trials), desc=label, unit="die", enabled=progress, leave=False):
        try:
            values.append(float(metric(make_trial(model, t))))
        except SolverError:
            values.append(worst)
    return values


def monte_carlo(
    model: Model,
    metric: Metric,
    variation: Variation,
    *,
    trials: int = 100,
    seed: int = 0,
    threshold: float | None = None,
    nominal: float | None = None,
    progress: bool = False,
) -> MonteCarloResult:
    """The metric over ``trials`` random dies.

    Args:
        model: the trained model (not modified).
        metric: what to measure on each die, e.g. [`flow_nll`][kirchhoffnet.hardware.flow_nll].
        variation: the σ's.
        trials: number of dies.
        seed: base seed; trial t uses ``trial_seed(seed, t)``.
        threshold: pass mark for the yield (``>=`` if higher is better, else ``<=``).
        nominal: the metric of the trained model if already known (saves one evaluation).
        progress: show progress (`kirchhoffnet._progress`).

    Returns:
        A [`MonteCarloResult`][kirchhoffnet.hardware.variation.MonteCarloResult]. With zero variation every trial equals
        the nominal value exactly.
    """
    if int(trials) < 1:
        raise ConfigError(f"trials must be a positive integer, got {trials}")
    check_threshold(threshold)
    base = metric.nominal(model) if nominal is None else nominal

    def make(m: Model, t: int) -> Model:
        return perturbed(m, variation, trial_seed(seed, t))

    label = f"σ edge {variation.edge:g} die {variation.die:g} cap {variation.capacitance:g}"
    values = evaluate_trials(model, metric, make, range(int(trials)), label, progress)
    return summarize(metric, variation, seed, base, values, threshold)


def sigma_sweep(
    model: Model,
    metric: Metric,
    sigmas: Sequence[float],
    *,
    kind: str = "edge",
    trials: int = 100,
    seed: int = 0,
    threshold: float | None = None,
    progress: bool = False,
) -> list[MonteCarloResult]:
    """[`monte_carlo`][kirchhoffnet.hardware.variation.monte_carlo] at each σ of one variation ``kind``, with common
    random numbers.

    Every σ and the threshold are checked before the first die is drawn."""
    variations = [Variation.of(kind, s) for s in sigmas]
    check_threshold(threshold)
    nominal = metric.nominal(model)
    return [
        monte_carlo(
            model,
            metric,
            variation,
            trials=trials,
            seed=seed,
            threshold=threshold,
            nominal=nominal,
            progress=progress,
        )
        for variation in variations
    ]

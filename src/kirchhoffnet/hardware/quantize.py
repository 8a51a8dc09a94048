"""Quantization: devices that can be programmed to finitely many states.

Two schemes:

* [`Uniform`][kirchhoffnet.hardware.quantize.Uniform] — b bits per parameter row of each slice: 2^b equally spaced
    levels spanning
  that row's [min, max] (the row's own full scale, as a per-slice DAC range would be);
* [`LookupTable`][kirchhoffnet.hardware.quantize.LookupTable] — a device-level table of programmable values per
    parameter name (say,
  the measured conductance states of an RRAM cell), shared by every slice;
  [`LookupTable.fit`][kirchhoffnet.hardware.quantize.LookupTable.fit] builds the 2^b-level table that minimises the
  squared error on a trained model (Lloyd–Max, i.e. 1-D k-means).

Every parameter snaps to its nearest level. [`straight_through`][kirchhoffnet.hardware.quantize.straight_through] gives
the quantized value in the forward pass and the identity gradient in the backward pass, for quantization-aware training.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kirchhoffnet._progress import bar
from kirchhoffnet.errors import ConfigError, shown, unknown_choice
from kirchhoffnet.hardware.analysis import Model, circuit_of, slices_of
from kirchhoffnet.hardware.metrics import Metric

MAX_BITS = 24
SCHEMES = ("uniform", "lut")


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise ConfigError(f"bits must be an integer from 1 to {MAX_BITS}, got {bits!r}")
    return bits


@dataclass(frozen=True)
class Uniform:
    """``bits`` bits per slice and parameter row, levels spanning the row's [min, max]."""

    bits: int

    def __post_init__(self) -> None:
        _check_bits(self.bits)

    def levels_for(self, row: Tensor, name: str) -> Tensor:
        lo, hi = row.min(), row.max()
        if bool(hi == lo):
            return lo.reshape(1)
        return torch.linspace(float(lo), float(hi), 2**self.bits, dtype=torch.float64).to(row.dtype)

    def describe(self) -> str:
        return f"uniform {self.bits}-bit per slice and parameter row"


@dataclass(frozen=True)
class LookupTable:
    """Programmable values per parameter name (e.g. ``{"gain_src": [...], ...}``), shared by all slices."""

    levels: dict[str, tuple[float, ...]]

    def __post_init__(self) -> None:
        clean = {}
        for name, values in self.levels.items():
            table = tuple(sorted(float(v) for v in values))
            if not table or not all(math.isfinite(v) for v in table):
                raise ConfigError(f"lookup table for {name!r} must hold finite values, got {shown(values)}")
            clean[name] = table
        object.__setattr__(self, "levels", clean)

    @classmethod
    def fit(cls, model: Model, bits: int, iterations: int = 100) -> LookupTable:
        """The 2^b-level table per parameter name minimising the squared error on ``model`` (Lloyd–Max)."""
        _check_bits(bits)
        pooled: dict[str, list[Tensor]] = {}
        for piece in slices_of(model):
            for name, row in zip(piece.device_family.param_names, piece.params.detach(), strict=True):
                pooled.setdefault(name, []).append(row.double())
        return cls(
            {name: tuple(_lloyd_max(torch.cat(rows), 2**bits, iterations).tolist()) for name, rows in pooled.items()}
        )

    def levels_for(self, row: Tensor, name: str) -> Tensor:
        if name not in self.levels:
            raise ConfigError(unknown_choice("parameter in the lookup table", name, self.levels))
        return torch.tensor(self.levels[name], dtype=row.dtype, device=row.device)

    def describe(self) -> str:
        counts = ", ".join(f"{n}: {len(v)}" for n, v in self.levels.items())
        return f"lookup table ({counts} levels)"


Scheme = Uniform | LookupTable


def _lloyd_max(values: Tensor, count: int, iterations: int) -> Tensor:
    """``count`` levels (sorted) minimising Σ (v − nearest level)²: 1-D k-means from quantiles."""
    unique = torch.unique(values)
    if len(unique) <= count:
        return unique
    levels = torch.quantile(values, torch.linspace(0, 1, count, dtype=values.dtype))
    for _ in range(iterations):
        assign = _nearest_index(values, levels)
        sums = torch.zeros_like(levels).index_add_(0, assign, values)
        counts = torch.zeros_like(levels).index_add_(0, assign, torch.ones_like(values))
        updated = torch.where(counts > 0, sums / counts.clamp(min=1), levels)
        if torch.equal(updated, levels):
            break
        levels = updated.sort().values
    return levels


def _nearest_index(values: Tensor, levels: Tensor) -> Tensor:
    """Index of the nearest of the sorted ``levels`` for each value."""
    upper = torch.searchsorted(levels, values).clamp(max=len(levels) - 1)
    lower = (upper - 1).clamp(min=0)
    closer_below = (values - levels[lower]).abs() <= (levels[upper] - values).abs()
    return torch.where(closer_below, lower, upper)


def quantize_params(params: Tensor, names: Sequence[str], scheme: Scheme) -> Tensor:
    """Each row of ``params`` (P, E) snapped to its nearest level (no gradient).

    Shapes:
        params: (P, E); ``names`` has P entries. Returns (P, E).
    """
    rows = []
    for row, name in zip(params.detach(), names, strict=True):
        levels = scheme.levels_for(row, name).to(row.dtype)
        rows.append(levels[_nearest_index(row.contiguous(), levels)])
    return torch.stack(rows)


def straight_through(params: Tensor, names: Sequence[str], scheme: Scheme) -> Tensor:
    """Quantized values forward, identity gradient backward (the straight-through estimator)."""
    return quantize_params(params, names, scheme) + (params - params.detach())  # exactly Q(p) forward


def resolve_scheme(scheme: str | Scheme, bits: int | None, model: Model | None = None) -> Scheme:
    """A scheme object from a name: ``uniform`` (needs ``bits``) or ``lut`` (fitted to ``model``)."""
    if isinstance(scheme, (Uniform, LookupTable)):
        return scheme
    if scheme not in SCHEMES:
        raise ConfigError(unknown_choice("quantization scheme", scheme, SCHEMES))
    if bits is None:
        raise ConfigError(f"quantization scheme {scheme!r} needs a number of bits")
    if scheme == "uniform":
        return Uniform(bits)
    if model is None:
        raise ConfigError("the 'lut' scheme is fitted to a model; pass the model or a LookupTable")
    return LookupTable.fit(model, bits)


def quantized(model: Model, scheme: Scheme) -> Model:
    """A copy of ``model`` with every device parameter quantized (``model`` is untouched)."""
    copied = copy.deepcopy(model)
    with torch.no_grad():
        for piece in slices_of(copied):
            piece.params.copy_(quantize_params(piece.params, piece.device_family.param_names, scheme))
    return copied


def quantization_sweep(
    model: Model, metric: Metric, bits: Sequence[int], scheme: str = "uniform", progress: bool = False
) -> list[dict[str, Any]]:
    """The metric at each bit count, with the RMS parameter error the quantization made (``progress``: a bar
    or, off a terminal, periodic lines; see `kirchhoffnet._progress`).

    Returns:
        One ``{"bits", "scheme", "metric", "value", "param_rms_error", "nominal"}`` dict per entry of ``bits``.
    """
    nominal = metric.nominal(model)
    flat = torch.cat([p.detach().flatten().double() for p in circuit_of(model).parameters()])
    points = []
    for b in bar(bits, desc=f"quantize {scheme}", unit="bit count", enabled=progress, leave=False):
        chosen = resolve_scheme(scheme, b, model)
        copy_ = quantized(model, chosen)
        moved = torch.cat([p.detach().flatten().double() for p in circuit_of(copy_).parameters()])
        points.append(
            {
                "bits": b,
                "scheme": scheme,
                "metric": metric.name,
                "value": metric(copy_),
                "nominal": nominal,
                "param_rms_error": float(((moved - flat) ** 2).mean().sqrt()),
            }
        )
    return points

"""Readouts: how a network's output is taken from the final node voltages."""

from __future__ import annotations

import abc
import math
import re
from typing import Any

from torch import Tensor, nn

from kirchhoffnet.errors import ConfigError


class _EndNodes(nn.Module, abc.ABC):
    """``k`` state nodes at one end of the node order, times ``scale``: node voltages confined between supply
    rails differ by under a volt, which as logits is a nearly uniform softmax; a fixed ``scale`` (per V)
    sharpens it without changing the argmax."""

    name: str

    def __init__(self, k: int, scale: float = 1.0) -> None:
        super().__init__()
        self.k = _positive(k)
        self.scale = _scale(scale)

    @abc.abstractmethod
    def _nodes(self, v: Tensor) -> Tensor:
        """The ``k`` columns of ``v`` this readout takes."""

    def forward(self, v: Tensor) -> Tensor:
        out = self._nodes(v)
        return out if self.scale == 1.0 else out * self.scale

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.k, "scale": self.scale}


class Last(_EndNodes):
    """The last ``k`` state nodes (the original ``lastK`` projector)."""

    name = "last"

    def _nodes(self, v: Tensor) -> Tensor:
        return v[:, -self.k :]


class First(_EndNodes):
    """The first ``k`` state nodes (the original ``firstK`` projector)."""

    name = "first"

    def _nodes(self, v: Tensor) -> Tensor:
        return v[:, : self.k]


class Linear(nn.Module):
    """A learnable affine map of all final voltages (a digital readout layer)."""

    def __init__(self, in_nodes: int, out_features: int) -> None:
        super().__init__()
        self.layer = nn.Linear(_positive(in_nodes), _positive(out_features))

    def forward(self, v: Tensor) -> Tensor:
        return self.layer(v)

    def spec(self) -> dict[str, Any]:
        return {"name": "linear", "in_nodes": self.layer.in_features, "out_features": self.layer.out_features}


READOUTS: dict[str, type[nn.Module]] = {"last": Last, "first": First, "linear": Linear}


def resolve_readout(readout: str | dict[str, Any] | nn.Module | None) -> nn.Module | None:
    """``"last10"``, ``"first2"``, ``{"name": "linear", ...}``, a module, or ``None`` (all nodes)."""
    if readout is None or isinstance(readout, nn.Module):
        return readout
    if isinstance(readout, str):
        match = re.fullmatch(r"(last|first)(\d+)", readout)
        if match:
            return READOUTS[match.group(1)](int(match.group(2)))
        if readout == "none":
            return None
        raise ConfigError(f"unknown readout {readout!r}; use lastK, firstK, none or a dict with name 'linear'")
    if isinstance(readout, dict):
        spec = dict(readout)
        name = spec.pop("name", None)
        if name not in READOUTS:
            raise ConfigError(f"unknown readout {name!r}; choose one of: {', '.join(READOUTS)}")
        try:
            return READOUTS[name](**spec)
        except TypeError as exc:
            raise ConfigError(f"bad settings for readout {name!r}: {exc}") from None
    raise ConfigError(f"readout must be a name, a dict or a module, got {type(readout).__name__}")


def _scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
        raise ConfigError(f"a readout's scale must be a positive finite number, got {scale!r}")
    return float(scale)


def _positive(k: int) -> int:
    if int(k) < 1:
        raise ConfigError(f"a readout needs a positive node count, got {k}")
    return int(k)

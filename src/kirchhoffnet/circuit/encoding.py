"""The affine map between a model's data and its circuit's node voltages."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from kirchhoffnet.errors import ConfigError


@dataclass(frozen=True)
class Encoding:
    """Node voltages ``v = offset + scale · x`` of data ``x``: where a circuit's inputs and outputs sit in volts.

    A transistor circuit between 0 V and its supply needs node voltages inside the rails, while a flow's data live
    around 0 at unit scale; an encoding moves the data into the rails without changing what the model computes in
    data space. [`simulate`][kirchhoffnet.solve.simulate.simulate] encodes inputs and decodes outputs; inside the
    solve (slice ends, trajectories, SPICE decks) the state is in volts. The default is the identity.

    Attributes:
        offset: the voltage of data value 0, in normalised volts.
        scale: volts per data unit (> 0).
    """

    offset: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("offset", "scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"encoding {name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.scale <= 0:
            raise ConfigError(f"encoding scale must be positive (volts per data unit), got {self.scale!r}")

    @property
    def identity(self) -> bool:
        return self.offset == 0.0 and self.scale == 1.0

    def encode(self, x: Tensor) -> Tensor:
        """Node voltages of data ``x`` (any shape)."""
        return x if self.identity else self.offset + self.scale * x

    def decode(self, v: Tensor) -> Tensor:
        """Data of node voltages ``v`` (any shape)."""
        return v if self.identity else (v - self.offset) / self.scale

    def log_det(self, dim: int) -> float:
        """log |det ∂v/∂x| = ``dim`` · log(scale): ``log p_data(x) = log p_volts(v) + log_det(dim)`` for a density
        over ``dim`` encoded coordinates."""
        return dim * math.log(self.scale)

    def spec(self) -> dict[str, float]:
        return {"offset": self.offset, "scale": self.scale}

    @classmethod
    def from_spec(cls, spec: Any) -> Encoding:
        """The encoding of a ``spec()`` dict; ``None`` is the identity."""
        if spec is None:
            return cls()
        if not isinstance(spec, dict) or set(spec) - {"offset", "scale"}:
            raise ConfigError(f"an encoding is {{offset: V, scale: V per unit}}, got {spec!r}")
        return cls(**spec)

    def describe(self) -> str:
        """One line for deck titles: how the node voltages relate to the data."""
        return f"node voltages v = {self.offset:g} + {self.scale:g}·x of data x"

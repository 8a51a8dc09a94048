"""A chip: every layer of a small ReLU network programmed into its own crossbar, from one seed."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from kirchhoffnet.rram.crossbar import Crossbar
from kirchhoffnet.rram.device import RRAMDevice

LayerWeights = Sequence[tuple[Tensor, Tensor | None]]
"""Per layer: weight (out, in) and bias (out,) or None."""


class Chip:
    """The layers of a network programmed into RRAM crossbars.

    The programming randomness (write noise, stuck cells, drift exponents) is drawn from ``seed``
    once, so the same seed is the same physical chip however often it is read; read noise is drawn
    at read time from a separate generator.

    Args:
        layers: the digital weights to program.
        device: the RRAM cell model.
        seed: identifies the chip.
    """

    def __init__(self, layers: LayerWeights, device: RRAMDevice | None = None, seed: int = 0) -> None:
        self.device = device if device is not None else RRAMDevice()
        self.seed = seed
        generator = torch.Generator().manual_seed(seed)
        self.crossbars = [Crossbar(w, b, self.device, generator) for w, b in layers]

    def effective(self, dtype: torch.dtype = torch.float32) -> list[tuple[Tensor, Tensor | None]]:
        """What each programmed layer computes, without read noise: [(weight, bias), ...]."""
        out = []
        for crossbar in self.crossbars:
            w, b = crossbar.effective()
            out.append((w.to(dtype), None if b is None else b.to(dtype)))
        return out

    @property
    def num_cells(self) -> int:
        """RRAM cells on the chip (two per weight and bias)."""
        return sum(2 * c.g_pos_s.numel() for c in self.crossbars)

    @property
    def has_read_noise(self) -> bool:
        return self.device.read_noise > 0

"""Hardware-aware training: fabricate a random die for every training step.

A training loop wraps each step in [`HardwareAwareTraining.step`][kirchhoffnet.hardware.HardwareAwareTraining.step];
inside it every slice's ``params`` is replaced, through a torch parametrization, by what a die would realise,

```text
p_die = Q(p) · factor,     Q: quantization with a straight-through gradient,
```

and the capacitances carry the die's mismatch. The optimizer keeps updating the trained
parameters ``p``: the gradient of the loss on the die flows back through ``factor`` (exactly)
and through ``Q`` (as the identity). A model trained this way sits in a flat region of the loss
that survives the spread of real dies, which is what the same Monte-Carlo then measures
([`monte_carlo`][kirchhoffnet.hardware.monte_carlo]).

Example:
    ```python
    aware = HardwareAwareTraining(model, HardwareAwareConfig(edge=0.05, bits=6), seed=0)
    for x, y in batches:
        optimizer.zero_grad()
        with aware.step():
            loss = loss_fn(model(x), y)
            loss.backward()
        optimizer.step()
    ```

Any loop can use it, whatever the gradient method (backprop or adjoint): the parametrization is
recomputed on every access of ``params``, so the solver's backward pass differentiates it too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn.utils import parametrize

from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware.analysis import Model, slices_of
from kirchhoffnet.hardware.quantize import LookupTable, Scheme, Uniform, straight_through
from kirchhoffnet.hardware.variation import Die, Variation, draw_die, trial_seed


class HardwareAwareConfig(BaseModel):
    """What a die injects during training (the ``hardware_aware`` section of a training config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    edge: float = Field(0.0, ge=0.0, le=1.0, description="Relative per-edge, per-parameter mismatch (0.05 = 5 %).")
    die: float = Field(0.0, ge=0.0, le=1.0, description="Relative global shift of every device on a die.")
    capacitance: float = Field(0.0, ge=0.0, le=1.0, description="Relative mismatch of each node capacitor.")
    bits: int | None = Field(
        None, ge=1, le=24, description="Quantize device parameters to this many bits (straight-through); none = float."
    )
    scheme: Literal["uniform", "lut"] = Field(
        "uniform",
        description="Quantization levels: 'uniform' per slice and row, or 'lut' fitted to the current parameters.",
    )

    @property
    def variation(self) -> Variation:
        return Variation(self.edge, self.die, self.capacitance)


class Fabricated(nn.Module):
    """Parametrization of a slice's (P, E) parameters: quantize (straight-through), then apply a die's factors."""

    def __init__(self, names: Sequence[str], scheme: Scheme | None, factor: Tensor | None) -> None:
        super().__init__()
        self.names = tuple(names)
        self.scheme = scheme
        self.factor = factor

    def forward(self, params: Tensor) -> Tensor:
        if self.scheme is not None:
            params = straight_through(params, self.names, self.scheme)
        if self.factor is not None:
            params = params * self.factor.to(params)  # the slice's dtype and device
        return params


class HardwareAwareTraining:
    """Injects a fresh random die into ``model`` for each training step.

    Args:
        model: the Circuit, Flow or Network being trained.
        config: what to inject.
        seed: step s draws its die from ``trial_seed(seed, s)``, so a resumed run can continue
            the same sequence by passing ``start_step``.
        start_step: the first step's index.
    """

    def __init__(self, model: Model, config: HardwareAwareConfig, seed: int = 0, start_step: int = 0) -> None:
        if not isinstance(config, HardwareAwareConfig):
            raise ConfigError(f"config must be a HardwareAwareConfig, got {type(config).__name__}")
        self.model = model
        self.config = config
        self.seed = int(seed)
        self.steps = int(start_step)

    @property
    def active(self) -> bool:
        """Whether anything is injected at all."""
        return not self.config.variation.is_zero or self.config.bits is not None

    def _scheme(self) -> Scheme | None:
        bits = self.config.bits
        if bits is None:
            return None
        if self.config.scheme == "lut":
            return LookupTable.fit(self.model, bits)  # refitted to the parameters of this step
        return Uniform(bits)

    @contextmanager
    def step(self, index: int | None = None) -> Iterator[Die | None]:
        """Within the block the model is a random die; afterwards it is the trained model again.

        Args:
            index: the step whose die to fabricate (a training loop passes its own step counter, so
                that a resumed run draws the same dies); default the step after the previous one.
        """
        if index is not None:
            self.steps = int(index)
        if not self.active:
            self.steps += 1
            yield None
            return
        generator = torch.Generator().manual_seed(trial_seed(self.seed, self.steps))
        self.steps += 1
        variation = self.config.variation
        die = draw_die(self.model, variation, generator) if not variation.is_zero else None
        scheme = self._scheme()
        slices = slices_of(self.model)
        saved = [s.capacitance.clone() for s in slices]
        try:
            for k, piece in enumerate(slices):
                factor = die.params[k] if die is not None else None
                names = piece.device_family.param_names
                parametrize.register_parametrization(piece, "params", Fabricated(names, scheme, factor))
                if die is not None and variation.capacitance > 0:
                    with torch.no_grad():
                        cap = piece.capacitance
                        cap.mul_(die.capacitance[: cap.shape[0]].to(cap))
            yield die
        finally:
            for piece, cap in zip(slices, saved, strict=True):
                if parametrize.is_parametrized(piece, "params"):
                    parametrize.remove_parametrizations(piece, "params", leave_parametrized=False)
                with torch.no_grad():
                    piece.capacitance.copy_(cap)

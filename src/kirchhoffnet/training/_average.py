"""An exponential moving average of a model's parameters (``train.ema_decay``).

Score models are saved as the average of their last few thousand steps rather than the last step:
denoising score matching's gradients are noisy at every diffusion time, and the average is the
better score. The average is part of the resumable state, so a resumed run averages the same steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from kirchhoffnet.errors import CheckpointError, shown


class WeightAverage:
    """``average ← decay · average + (1 − decay) · parameters`` after every optimiser step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.names = [name for name, _ in model.named_parameters()]
        self.params: list[Tensor] = [p for _, p in model.named_parameters()]
        self.average = [p.detach().clone() for p in self.params]

    def update(self) -> None:
        with torch.no_grad():
            torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1 - self.decay)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged parameters inside the block, its own again after it."""
        own = [p.detach().clone() for p in self.params]
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, own)

    def copy_to_model(self) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.params, self.average)

    def state(self) -> dict[str, Tensor]:
        return {name: value.clone() for name, value in zip(self.names, self.average, strict=True)}

    def load(self, state: dict[str, Tensor], source: str) -> None:
        """Restore `state`'s tensors, checked against the model's parameters first."""
        if sorted(state) != sorted(self.names):
            raise CheckpointError(
                f"{source}: the parameter average holds {shown(sorted(state), 200)}, the model's parameters "
                f"are {shown(sorted(self.names), 200)}"
            )
        for name, param in zip(self.names, self.params, strict=True):
            value = state[name]
            if not isinstance(value, Tensor) or value.shape != param.shape or not value.is_floating_point():
                raise CheckpointError(f"{source}: the parameter average's {name} does not fit the model's")
            if not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"{source}: the parameter average's {name} holds NaN or infinite values")
        self.average = [state[name].to(param).clone() for name, param in zip(self.names, self.params, strict=True)]

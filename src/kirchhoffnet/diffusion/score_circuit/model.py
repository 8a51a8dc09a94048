"""The score circuit as a diffusion model: its VP-SDE, the score it represents, and guidance as circuit copies.

:class:`CircuitScoreModel` is what training, sampling and the run files handle, with the interface of the
digital :class:`~kirchhoffnet.diffusion.score.ScoreModel` (``sde``, ``score``, ``sharpened``, ``spec``).
Classifier-free guidance is two copies of the circuit whose data-node currents are mixed
(:func:`guided_copies`, :func:`mix_copies`), which the transient and the SPICE deck build too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet.diffusion.score_circuit.circuit import ScoreCircuit
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import ConfigError


def guided_copies(labels: Tensor | None, guidance: float) -> tuple[Tensor | None, Tensor]:
    """Classifier-free guidance as circuit copies: the labels of the copies stacked along the batch, and the gains
    mixing their currents into the data nodes (:func:`mix_copies`). One copy (gain 1) without guidance; with
    w ≠ 0 the labelled copy (1 + w) and an unconditional one, all class sources at 0 V (−w).

    Shapes:
        labels: (B,) long or None. Returns (k B,) or None, and (k,) with k = 1 or 2.
    """
    if labels is None or not guidance:
        return labels, torch.ones(1)
    return torch.cat([labels, torch.full_like(labels, -1)]), torch.tensor([1.0 + guidance, -guidance])


def mix_copies(values: Tensor, gains: Tensor) -> Tensor:
    """Σ_j gains_j × copy j of ``values`` whose last axis stacks the copies. Shapes: (…, k B) → (…, B)."""
    if len(gains) == 1:
        return values
    copies = values.unflatten(-1, (len(gains), -1))
    return (copies * gains.to(values.dtype).unsqueeze(1)).sum(-2)


class CircuitScoreModel(nn.Module):
    """A :class:`ScoreCircuit` with its VP-SDE: the score ∇log p_s = 2 u / β − x of the circuit velocity u.

    ``velocity_gain`` k (1 = exact) scales u, i.e. samples the probability-flow ODE with β ×k (C_x / k).
    """

    def __init__(self, circuit: ScoreCircuit, sde: VPSDE, velocity_gain: float = 1.0) -> None:
        super().__init__()
        self.circuit, self.sde, self.velocity_gain = circuit, sde, float(velocity_gain)

    @property
    def dim(self) -> int:
        return self.circuit.dim

    @property
    def num_classes(self) -> int:
        return self.circuit.num_classes

    def velocity(self, x: Tensor, s: Tensor, labels: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """Probability-flow velocity dx/dτ (reverse time) of the circuit, with classifier-free guidance
        (1 + w) u(x | c) − w u(x) for ``guidance`` w ≠ 0 (two circuit copies, :func:`guided_copies`).

        Shapes:
            x: (B, dim); s: (B,) or scalar; labels: (B,) long for a conditional circuit. Returns (B, dim).
        """
        velocity = self._guided_velocity(x, torch.as_tensor(s, dtype=x.dtype), labels, guidance, None)[0]
        return velocity * self.velocity_gain

    def score(self, x: Tensor, s: Tensor, labels: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """∇log p_s(x) = 2 u / β − x (the gain-free velocity). Shapes: x (B, dim); s (B,) or scalar → (B, dim)."""
        return self._tracked_score(x, torch.as_tensor(s, dtype=x.dtype), labels, guidance, None)[0]

    def _tracked_score(
        self, x: Tensor, s: Tensor, labels: Tensor | None, guidance: float, hidden: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """The score and the settled hidden nodes; a sampler passes the previous step's ``hidden`` back in, so a
        passive circuit's Newton settle starts next to its root (the same equilibrium, fewer iterations)."""
        velocity, hidden = self._guided_velocity(x, s, labels, guidance, hidden)
        return 2 * velocity / self.sde.beta(s).reshape(-1, 1) - x, hidden

    def _guided_velocity(
        self, x: Tensor, s: Tensor, labels: Tensor | None, guidance: float, hidden: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """The circuit's velocity without the sampling gain, the guided copies mixed, and the copies' settled
        hidden nodes (hidden, copies · B), Newton started from ``hidden`` (None: from 0)."""
        copies, gains = guided_copies(labels, guidance)
        stacked = x.t().repeat(1, len(gains))
        drive = self.circuit.drive(s.repeat(len(gains)) if s.dim() else s, copies)
        velocity, hidden = self.circuit.settled_velocity(stacked, drive, hidden)
        return mix_copies(velocity, gains).t(), hidden

    def sharpened(self, beta_scale: float = 1.0, score_gain: float = 1.0) -> CircuitScoreModel:
        """A view (sharing the circuit) that samples with β ×``beta_scale`` (PF-ODE: velocity ×k, the data
        capacitors C_x / k); a score gain is not a circuit element here and must be 1."""
        if not beta_scale > 0 or score_gain != 1.0:
            raise ConfigError(
                f"the score circuit samples sharpened only by beta_scale > 0 (got {beta_scale}) "
                f"with score_gain 1 (got {score_gain}); set sample.sde_score_gain: 1"
            )
        return CircuitScoreModel(self.circuit, self.sde, self.velocity_gain * beta_scale)  # shares the circuit

    def spec(self) -> dict[str, Any]:
        return {"kind": "score-circuit", "circuit": self.circuit.spec(), "sde": self.sde.to_dict()}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> CircuitScoreModel:
        return cls(ScoreCircuit(**spec["circuit"]), VPSDE(**spec["sde"]))

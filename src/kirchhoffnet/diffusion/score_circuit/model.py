"""The score circuit as a diffusion model: its VP-SDE, the score it represents, and guidance as circuit copies.

`CircuitScoreModel` is what training, sampling and the run files handle: a
[`ScoreField`][kirchhoffnet.diffusion.ScoreField], like the crossbar
[`ScoreModel`][kirchhoffnet.diffusion.ScoreModel], whose output is the circuit's velocity. Classifier-free
guidance is two copies of the circuit whose data-node currents are mixed
(`guided_copies`, `mix_copies`),
which the transient and the SPICE deck build too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from kirchhoffnet.diffusion.field import guided_copies, mix_copies
from kirchhoffnet.diffusion.score_circuit.circuit import ScoreCircuit
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import ConfigError

__all__ = ["CircuitScoreModel", "guided_copies", "mix_copies"]


class CircuitScoreModel(nn.Module):
    """A `ScoreCircuit` with its VP-SDE: the score ∇log p_s = 2 u / β − x of the circuit velocity u.

    ``velocity_gain`` k (1 = exact) scales u, i.e. samples the probability-flow ODE with β ×k (C_x / k). It is
    solved by its own transient or by digital Euler steps of its score.
    """

    backend: ClassVar[str] = "circuit"
    integrators: ClassVar[tuple[str, ...]] = ("transient", "euler")

    def __init__(self, circuit: ScoreCircuit, sde: VPSDE, velocity_gain: float = 1.0) -> None:
        super().__init__()
        self.circuit, self.sde, self.velocity_gain = circuit, sde, float(velocity_gain)

    @property
    def dim(self) -> int:
        return self.circuit.dim

    @property
    def num_classes(self) -> int:
        return self.circuit.num_classes

    def output(self, x: Tensor, s: Tensor, labels: Tensor | None = None, hint: Any = None) -> tuple[Tensor, Any]:
        """The circuit's velocity u without the sampling gain, and its settled hidden nodes (hidden, B) as the
        hint: Newton starts from ``hint`` (None: from 0), so a sampler passing the previous step's back in
        settles a passive circuit next to its root (the same equilibrium, fewer iterations).

        Shapes:
            x: (B, dim); s: (B,) or scalar; labels: (B,) long for a conditional circuit. Returns (B, dim).
        """
        drive = self.circuit.drive(torch.as_tensor(s, dtype=x.dtype).contiguous(), labels)
        velocity, hidden = self.circuit.settled_velocity(x.t().contiguous(), drive, hint)
        return velocity.t(), hidden

    def score_of(self, output: Tensor, x: Tensor, s: Tensor) -> Tensor:
        """∇log p_s(x) = 2 u / β − x of the gain-free velocity u."""
        return 2 * output / self.sde.beta(torch.as_tensor(s, dtype=x.dtype)).reshape(-1, 1) - x

    def velocity_of(self, output: Tensor, x: Tensor, s: Tensor) -> Tensor:
        """The probability-flow velocity dx/dτ (reverse time): u × the sampling gain."""
        return output * self.velocity_gain

    def velocity(self, x: Tensor, s: Tensor, labels: Tensor | None = None) -> Tensor:
        """Probability-flow velocity dx/dτ (reverse time) of the circuit (guidance:
        [`Guided`][kirchhoffnet.diffusion.Guided], two circuit copies).

        Shapes:
            x: (B, dim); s: (B,) or scalar; labels: (B,) long for a conditional circuit. Returns (B, dim).
        """
        return self.velocity_of(self.output(x, s, labels)[0], x, s)

    def score(self, x: Tensor, s: Tensor, labels: Tensor | None = None) -> Tensor:
        """∇log p_s(x) = 2 u / β − x (the gain-free velocity). Shapes: x (B, dim); s (B,) or scalar → (B, dim)."""
        return self.score_of(self.output(x, s, labels)[0], x, s)

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

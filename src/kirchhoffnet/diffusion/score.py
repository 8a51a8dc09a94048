"""The score network of the RRAM diffusion solver (Yang et al., arXiv 2404.05648) and its wrapper with the SDE.

The network is deliberately tiny so that it fits one crossbar per layer: ``dim → width → width → dim`` with
ReLU, an output gain (×5 in the paper), and a time embedding of fixed random frequencies (sin and cos)
added after each hidden layer's matrix product; a conditional model adds a class embedding likewise. In
hardware the embeddings are voltage sources added at the hidden nodes, so they are kept out of the
crossbars here too: every layer's matrix product goes through a replaceable ``linear`` callable, which
is how noise-aware training and the programmed RRAM crossbars plug in.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from kirchhoffnet.diffusion.field import check_class_labels, check_labels
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import ConfigError, unknown_choice

Linear = Callable[[Tensor], Tensor]
"""A layer's matrix product with bias: (B, in) → (B, out)."""

PARAMETRIZATIONS = ("score", "noise")


class TimeEmbedding(nn.Module):
    """sin and cos of 2π f_k s for fixed random frequencies f_k ~ N(0, scale²) (not trained).

    Shapes:
        s: (B,) or scalar diffusion time. Returns (B, 2 F).
    """

    frequencies: Tensor

    def __init__(self, width: int, scale: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if width % 2:
            raise ConfigError(f"the time embedding needs an even width (sin and cos per frequency), got {width}")
        self.register_buffer("frequencies", torch.randn(width // 2, generator=generator) * scale)

    def forward(self, s: Tensor) -> Tensor:
        phase = 2 * math.pi * s.reshape(-1, 1) * self.frequencies
        return torch.cat([torch.sin(phase), torch.cos(phase)], dim=1)


class ClassEmbedding(nn.Module):
    """One-hot class → Linear → GELU → Linear; the null label (−1) embeds to zero, which is what
    classifier-free guidance's label dropout trains as the unconditional model.

    Shapes:
        labels: (B,) long in [−1, num_classes). Returns (B, width).
    """

    def __init__(self, num_classes: int, width: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(nn.Linear(num_classes, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, labels: Tensor) -> Tensor:
        labels = check_class_labels(labels, self.num_classes)
        known = labels >= 0
        one_hot = torch.zeros(len(labels), self.num_classes, device=labels.device)
        one_hot[known, labels[known]] = 1.0
        return self.net(one_hot) * known.unsqueeze(1).to(one_hot.dtype)


class ScoreNet(nn.Module):
    """``dim → width → width → dim`` ReLU network with additive time (and class) embeddings.

    Args:
        dim: data dimension (2 for the ring and the VAE latents).
        width: hidden width; 14 in the paper (7 embedding frequencies).
        amplitude: fixed output gain (5 in the paper), so weights stay in a programmable range.
        num_classes: 0 for an unconditional model.
        parametrization: ``score`` (the output is the score, as in the paper) or ``noise`` (the output
            predicts the added noise z and the score is −output/σ(s), better conditioned near s = 0).
        bias: whether the layers have biases (a bias is one more crossbar row driven by a constant voltage).
        frequency_scale: standard deviation of the embedding frequencies.
        noise_floor: with the noise parametrization the score is −output / √(σ² + noise_floor²): a floor
            near the data's smallest scale bounds the gain near s = 0 (0 = plain −output/σ).
    """

    def __init__(
        self,
        dim: int = 2,
        width: int = 14,
        amplitude: float = 5.0,
        num_classes: int = 0,
        parametrization: str = "score",
        bias: bool = True,
        frequency_scale: float = 1.0,
        noise_floor: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if parametrization not in PARAMETRIZATIONS:
            raise ConfigError(unknown_choice("score parametrization", parametrization, PARAMETRIZATIONS))
        if dim < 1 or width < 2 or num_classes < 0:
            raise ConfigError(
                f"ScoreNet needs dim >= 1, width >= 2, num_classes >= 0; got {dim}, {width}, {num_classes}"
            )
        self.dim, self.width, self.amplitude = dim, width, float(amplitude)
        self.num_classes, self.parametrization, self.bias = num_classes, parametrization, bias
        self.frequency_scale, self.noise_floor = frequency_scale, noise_floor
        self.embedding = TimeEmbedding(width, frequency_scale, generator)
        self.layers = nn.ModuleList(
            [nn.Linear(dim, width, bias=bias), nn.Linear(width, width, bias=bias), nn.Linear(width, dim, bias=bias)]
        )
        self.class_embedding = ClassEmbedding(num_classes, width) if num_classes else None

    def layer_weights(self) -> list[tuple[Tensor, Tensor | None]]:
        """(weight (out, in), bias (out,) or None) of the three layers, as programmed into crossbars."""
        return [(layer.weight, layer.bias) for layer in cast(list[nn.Linear], list(self.layers))]

    def class_drive(self, labels: Tensor | None) -> Tensor | None:
        """What the class-embedding sources add at each hidden node, (B, width); None when unconditional."""
        labels = check_labels(self.num_classes, labels)
        if self.class_embedding is None or labels is None:
            return None
        return cast(Tensor, self.class_embedding(labels))

    def hidden_drive(self, s: Tensor, labels: Tensor | None = None) -> Tensor:
        """What the embedding sources add at each hidden node: (B or 1, width)."""
        drive = self.embedding(s)
        class_drive = self.class_drive(labels)
        return drive if class_drive is None else drive + class_drive

    def forward(
        self, x: Tensor, s: Tensor, labels: Tensor | None = None, linear: Sequence[Linear] | None = None
    ) -> Tensor:
        """Network output (the score, or the predicted noise, by ``parametrization``).

        Shapes:
            x: (B, dim); s: (B,) or scalar diffusion time; labels: (B,) long. Returns (B, dim).
        """
        return self.activations(x, s, labels, linear)[0]

    def activations(
        self, x: Tensor, s: Tensor, labels: Tensor | None = None, linear: Sequence[Linear] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """The output and the two hidden layers' amplifier outputs (state units), the signals the analog
        loop clips at its rails (`LoopSettings.saturation_v`).

        Shapes:
            as `forward`; the hidden outputs are (B, width) each.
        """
        first, middle, last = linear if linear is not None else self.layers
        drive = self.hidden_drive(s, labels)
        h1 = torch.relu(first(x) + drive)
        h2 = torch.relu(middle(h1) + drive)
        return last(h2) * self.amplitude, [h1, h2]

    def spec(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "width": self.width,
            "amplitude": self.amplitude,
            "num_classes": self.num_classes,
            "parametrization": self.parametrization,
            "bias": self.bias,
            "frequency_scale": self.frequency_scale,
            "noise_floor": self.noise_floor,
        }


class ScoreModel(nn.Module):
    """A score network together with the SDE it was trained for; what checkpoints hold and samplers take.

    A [`ScoreField`][kirchhoffnet.diffusion.ScoreField] whose output is the network's: the score is that
    times [`output_gain`][kirchhoffnet.diffusion.ScoreModel.output_gain]. It is solved by digital Euler steps or on the
    simulated RRAM crossbar loop.
    """

    backend: ClassVar[str] = "crossbar"
    integrators: ClassVar[tuple[str, ...]] = ("euler", "analog")

    def __init__(self, net: ScoreNet, sde: VPSDE) -> None:
        super().__init__()
        self.net = net
        self.sde = sde

    @property
    def dim(self) -> int:
        return self.net.dim

    @property
    def num_classes(self) -> int:
        return self.net.num_classes

    def output_gain(self, s: Tensor) -> Tensor:
        """Factor turning the network output into the score: 1, or −1/√(σ² + floor²) for the noise parametrization."""
        if self.net.parametrization == "score":
            return torch.ones_like(s)
        return -torch.rsqrt(self.sde.marginal(s)[1].square() + self.net.noise_floor**2)

    def output(self, x: Tensor, s: Tensor, labels: Tensor | None = None, hint: Any = None) -> tuple[Tensor, Any]:
        """The network output (no solver state: the hint stays None). Shapes: x (B, dim) → (B, dim)."""
        return self.net(x, s, labels), None

    def score_of(self, output: Tensor, x: Tensor, s: Tensor) -> Tensor:
        """The score of a network output: output × [`output_gain`][kirchhoffnet.diffusion.ScoreModel.output_gain]."""
        return output * self.output_gain(s).reshape(-1, 1)

    def velocity_of(self, output: Tensor, x: Tensor, s: Tensor) -> Tensor:
        """The probability-flow velocity dx/dτ = ½ β (x + score) of a network output."""
        return 0.5 * self.sde.beta(s).reshape(-1, 1) * (x + self.score_of(output, x, s))

    def score(
        self, x: Tensor, s: Tensor, labels: Tensor | None = None, linear: Sequence[Linear] | None = None
    ) -> Tensor:
        """∇ log p_s(x); ``linear`` replaces the layers' matrix products (noise-aware training). Guidance:
        [`Guided`][kirchhoffnet.diffusion.Guided].

        Shapes:
            x: (B, dim); s: scalar or (B,); labels: (B,) long. Returns (B, dim).
        """
        return self.score_of(self.net(x, s, labels, linear), x, s)

    def velocity(self, x: Tensor, s: Tensor, labels: Tensor | None = None) -> Tensor:
        """The probability-flow velocity dx/dτ (reverse time). Shapes: x (B, dim) → (B, dim)."""
        return self.velocity_of(self.net(x, s, labels), x, s)

    def sharpened(self, beta_scale: float = 1.0, score_gain: float = 1.0) -> ScoreModel:
        """A copy to sample with β ×``beta_scale`` and the score ×``score_gain`` (both 1: exact sampling).

        Both make samples sharper than the learned distribution, compensating a network too small to
        resolve fine structure: the paper samples with β ×2 (×1.5 conditional); a score gain λ > 1 makes
        the reverse SDE sample roughly p^λ (lower temperature). In hardware both are amplifier gains.
        """
        if not (beta_scale > 0 and score_gain > 0):
            raise ConfigError(f"beta_scale and score_gain must be positive, got {beta_scale} and {score_gain}")
        net = copy.deepcopy(self.net)
        net.amplitude *= score_gain
        return ScoreModel(net, self.sde.scaled(beta_scale))

    def spec(self) -> dict[str, Any]:
        return {"kind": "score-model", "net": self.net.spec(), "sde": self.sde.to_dict()}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> ScoreModel:
        return cls(ScoreNet(**spec["net"]), VPSDE(**spec["sde"]))


def weight_noise_layers(
    net: ScoreNet, std: float, limit: float, generator: torch.Generator | None = None
) -> list[Linear]:
    """The layers with multiplicative weight noise w (1 + n), n ~ N(0, std²) clipped to ±limit, drawn once
    per call and shared by the whole batch: a different "chip" for each training step (noise-aware training).
    """

    def factor(p: Tensor) -> Tensor:
        noise = torch.randn(p.shape, generator=generator, dtype=p.dtype, device=p.device) * std
        return 1 + noise.clamp(-limit, limit)

    def noisy(layer: nn.Linear) -> Linear:
        weight = layer.weight * factor(layer.weight)
        bias = None if layer.bias is None else layer.bias * factor(layer.bias)
        return lambda x: torch.nn.functional.linear(x, weight, bias)

    return [noisy(layer) for layer in cast(list[nn.Linear], list(net.layers))]

"""Digital baselines to compare KirchhoffNets against: a multilayer perceptron of chosen size, and an ODE-Net
(Chen et al., 2018) for images. Both are saved in one way (`save_baseline` / `load_baseline`): safetensors with the
constructor's settings in the header, each family under its own format tag."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kirchhoffnet._schema import check_arguments
from kirchhoffnet.errors import CheckpointError, ConfigError, KirchhoffError
from kirchhoffnet.io import load_exact, read_tensors, write_tensors
from kirchhoffnet.solve import DEFAULT_GRADIENT, GradientMethod, Solver, SolveStats, solve_field

MLP_FORMAT = "kirchhoffnet-mlp-1"
ODENET_FORMAT = "kirchhoffnet-odenet-1"
DEFAULT_SOLVER = Solver()


class MLP(nn.Module):
    """``in → hidden[0] → ... → hidden[-1] → out`` with ReLU or tanh between the layers."""

    format: ClassVar[str] = MLP_FORMAT
    family: ClassVar[str] = "MLP"

    def __init__(self, in_features: int, hidden: list[int], out_features: int = 1, activation: str = "relu") -> None:
        super().__init__()
        self.parameter_count(in_features, hidden, out_features, activation)  # the settings' checks
        widths = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), nn.ReLU() if activation == "relu" else nn.Tanh()]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], out_features))
        self.settings = {
            "in_features": in_features,
            "hidden": list(hidden),
            "out_features": out_features,
            "activation": activation,
        }

    @staticmethod
    def parameter_count(in_features: int, hidden: list[int], out_features: int = 1, activation: str = "relu") -> int:
        """Weights and biases of the MLP these settings describe, counted before anything is allocated."""
        if activation not in ("relu", "tanh"):
            raise ConfigError(f"activation must be relu or tanh, got {activation!r}")
        widths = [in_features, *hidden, out_features]
        if min(widths) < 1:
            raise ConfigError(f"layer widths must be positive, got {widths}")
        return sum((a + 1) * b for a, b in itertools.pairwise(widths))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _norm(channels: int) -> nn.GroupNorm:
    """Group normalisation as Chen et al. use it, with the largest group count up to 32 that divides ``channels``."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


class _TimeConv(nn.Module):
    """A 3×3 convolution that also sees the time, as one more input channel filled with ``t``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels + 1, channels, 3, padding=1)

    def forward(self, t: Tensor, h: Tensor) -> Tensor:
        time = t.to(h.dtype).expand(h.shape[0], 1, *h.shape[2:])
        return self.conv(torch.cat([time, h], dim=1))


class _ConvField(nn.Module):
    """dh/dt = f(t, h) of the ODE block: norm, ReLU, time-conv, norm, ReLU, time-conv, norm."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList([_norm(channels) for _ in range(3)])
        self.convs = nn.ModuleList([_TimeConv(channels) for _ in range(2)])

    def forward(self, t: Tensor, h: Tensor) -> Tensor:
        for norm, conv in zip(self.norms, self.convs, strict=False):
            h = conv(t, F.relu(norm(h)))
        return self.norms[-1](h)


class ODENet(nn.Module):
    """Chen et al.'s ODE-Net for image classification: a convolutional stem (a 3×3 convolution to ``channels`` maps,
    then ``downsamplings`` stride-2 4×4 convolutions), one ODE block over t in [0, ``t_end``] whose field is two
    time-conditioned 3×3 convolutions, then average pooling and a linear layer to the logits.

    Takes the flattened (B, C·H·W) rows the classify task keeps. The solver and gradient method are the run's
    (``solver`` section), not part of the settings saved with the weights; ``stats`` holds the last solve's cost as
    a circuit network's does.
    """

    format: ClassVar[str] = ODENET_FORMAT
    family: ClassVar[str] = "ODE-Net"
    stats: SolveStats | None

    def __init__(
        self,
        image_channels: int,
        height: int,
        width: int,
        classes: int,
        channels: int = 64,
        downsamplings: int = 2,
        t_end: float = 1.0,
        solver: Solver = DEFAULT_SOLVER,
        gradient: GradientMethod = DEFAULT_GRADIENT,
    ) -> None:
        super().__init__()
        self.parameter_count(image_channels, height, width, classes, channels, downsamplings, t_end)
        stem: list[nn.Module] = [nn.Conv2d(image_channels, channels, 3, padding=1)]
        for _ in range(downsamplings):
            stem += [_norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 4, stride=2, padding=1)]
        self.stem = nn.Sequential(*stem)
        self.field = _ConvField(channels)
        self.head = nn.Sequential(
            _norm(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)
        )
        self.image_shape = (image_channels, height, width)
        self.solver = solver
        self.gradient = gradient
        self.stats = None
        self.settings = {
            "image_channels": image_channels,
            "height": height,
            "width": width,
            "classes": classes,
            "channels": channels,
            "downsamplings": downsamplings,
            "t_end": t_end,
        }

    @staticmethod
    def parameter_count(
        image_channels: int, height: int, width: int, classes: int, channels: int, downsamplings: int, t_end: float
    ) -> int:
        """Weights of the ODE-Net these settings describe, counted before anything is allocated (so that a
        checkpoint's header can be checked against its tensors first)."""
        for name, value, low in [
            ("image_channels", image_channels, 1),
            ("classes", classes, 1),
            ("channels", channels, 1),
            ("downsamplings", downsamplings, 0),
        ]:
            if value < low:
                raise ConfigError(f"{name} must be at least {low}, got {value}")
        if min(height, width) < 2**downsamplings:
            raise ConfigError(
                f"downsamplings: {downsamplings} stride-2 convolutions need images of at least {2**downsamplings} "
                f"pixels a side, got {height}x{width}"
            )
        if not (math.isfinite(t_end) and t_end > 0):
            raise ConfigError(f"t_end must be a positive number, got {t_end}")
        norm = 2 * channels
        stem = (image_channels * 9 + 1) * channels + downsamplings * (norm + (channels * 16 + 1) * channels)
        field = 3 * norm + 2 * ((channels + 1) * 9 + 1) * channels
        return stem + field + norm + (channels + 1) * classes

    def forward(self, x: Tensor) -> Tensor:
        c, h, w = self.image_shape
        if x.dim() != 2 or x.shape[1] != c * h * w:
            raise ConfigError(
                f"the ODE-Net takes (batch, {c * h * w}) rows of {c}x{h}x{w} images, got {tuple(x.shape)}"
            )
        features = self.stem(x.reshape(-1, c, h, w))
        span = (0.0, float(self.settings["t_end"]))
        end, self.stats = solve_field(self.field, features, span, self.solver, self.gradient, "the ODE-Net's block")
        return self.head(end)


Baseline = MLP | ODENet
BASELINE_FORMATS = (MLP_FORMAT, ODENET_FORMAT)
"""The format tags of baseline checkpoints (a run directory's model file may hold one instead of a circuit model)."""


def save_baseline(model: Baseline, path: Path, metadata: dict[str, Any]) -> Path:
    """Safetensors with the model's settings in the header, under its family's format, written atomically."""
    return write_tensors(path, model.state_dict(), model.settings, metadata, fmt=model.format)


def load_baseline(path: Path, kind: type[Baseline]) -> Baseline:
    """The baseline of family ``kind`` written by `save_baseline`: its header's settings checked (known names, types,
    and the parameter count they imply equal to the file's) before it is built, its tensors loaded exactly (names,
    shapes, finite values)."""
    settings, tensors, _ = read_tensors(path, kind.format, f"an {kind.family} baseline checkpoint")
    values = sum(t.numel() for t in tensors.values())
    try:
        arguments = check_arguments(settings, kind, "spec", values)
        implied = kind.parameter_count(**arguments)
    except KirchhoffError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except TypeError as exc:  # a required setting missing
        raise CheckpointError(f"{path}: spec lacks a setting ({exc})") from None
    if implied != values:
        raise CheckpointError(
            f"{path}: its header describes an {kind.family} of {implied:,} parameters but its tensors hold {values:,}"
        )
    model = kind(**arguments)
    load_exact(model, tensors, source=str(path), against="the model its header describes")
    return model

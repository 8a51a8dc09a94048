"""Digital baselines to compare KirchhoffNets against: a multilayer perceptron of chosen size."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from kirchhoffnet._schema import check_arguments
from kirchhoffnet.errors import CheckpointError, KirchhoffError
from kirchhoffnet.io import load_exact, read_tensors, write_tensors

MLP_FORMAT = "kirchhoffnet-mlp-1"


class MLP(nn.Module):
    """``in → hidden[0] → ... → hidden[-1] → out`` with ReLU or tanh between the layers."""

    def __init__(self, in_features: int, hidden: list[int], out_features: int = 1, activation: str = "relu") -> None:
        super().__init__()
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

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def save_mlp(model: MLP, path: Path, metadata: dict[str, Any]) -> Path:
    """Safetensors with the layer sizes in the header, written atomically."""
    return write_tensors(path, model.state_dict(), model.settings, metadata, fmt=MLP_FORMAT)


def load_mlp(path: Path) -> MLP:
    """The MLP written by `save_mlp`: its header's sizes checked before it is built, its tensors
    loaded exactly (names, shapes, finite values)."""
    settings, tensors, _ = read_tensors(path, MLP_FORMAT, "an MLP baseline checkpoint")
    try:
        model = MLP(**check_arguments(settings, MLP, "spec", sum(t.numel() for t in tensors.values())))
    except KirchhoffError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    load_exact(model, tensors, source=str(path), against="the MLP its header describes")
    return model

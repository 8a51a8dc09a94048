"""Digital baselines to compare KirchhoffNets against: a multilayer perceptron of chosen size."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from kirchhoffnet.errors import CheckpointError, KirchhoffError, shown
from kirchhoffnet.io import atomic_write, load_exact
from kirchhoffnet.schema import check_arguments

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
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"format": MLP_FORMAT, "spec": json.dumps(model.settings), "metadata": json.dumps(metadata)}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def load_mlp(path: Path) -> MLP:
    """The MLP written by :func:`save_mlp`: its header's sizes checked before it is built, its tensors
    loaded exactly (names, shapes, finite values)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None
    if header.get("format") != MLP_FORMAT:
        raise CheckpointError(f"{path} is not an MLP baseline checkpoint (format {shown(header.get('format'))})")
    try:
        settings = json.loads(header.get("spec", ""))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} has a corrupt header: {shown(str(exc), 200)}") from None
    try:
        model = MLP(**check_arguments(settings, MLP, "spec", sum(t.numel() for t in tensors.values())))
    except KirchhoffError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    load_exact(model, tensors, source=str(path), against="the MLP its header describes")
    return model

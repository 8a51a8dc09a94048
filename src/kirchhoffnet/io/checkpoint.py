"""Our own checkpoints: safetensors tensors with the model's structure embedded as JSON metadata.

safetensors holds plain tensors and a string header, so loading a checkpoint can never execute
code. The structure (topologies are stored as tensors, device families and solver settings as
JSON) makes a checkpoint self-contained: ``load(path)`` rebuilds the model with no config file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from kirchhoffnet.circuit import Circuit
from kirchhoffnet.errors import CheckpointError, KirchhoffError
from kirchhoffnet.io.atomic import atomic_write
from kirchhoffnet.models import Flow, Network

FORMAT = "kirchhoffnet-checkpoint-1"
Model = Circuit | Flow | Network


def save(model: Model, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a Circuit, Flow or Network) atomically to a ``.safetensors`` file.

    Args:
        metadata: extra JSON-serialisable information (training config, epoch, metrics).
    """
    spec = model.spec() if not isinstance(model, Circuit) else {"kind": "circuit", "circuit": model.spec()}
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    header = {"format": FORMAT, "spec": json.dumps(spec), "metadata": json.dumps(metadata or {})}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """``(spec, tensors, metadata)`` of a checkpoint, validated but not yet built into a model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors checkpoint (truncated or another format?): {exc}"
        ) from None
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file but not a kirchhoffnet checkpoint (format {header.get('format')!r})"
        )
    try:
        spec = json.loads(header["spec"])
        metadata = json.loads(header.get("metadata", "{}"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} has a corrupt header: {exc}") from None
    return spec, tensors, metadata


def load(path: str | os.PathLike[str]) -> Model:
    """Rebuild the model saved by :func:`save`; raises :class:`CheckpointError` on any mismatch."""
    spec, tensors, _ = read(path)
    try:
        return build(spec, tensors)
    except KirchhoffError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def build(spec: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Model:
    """A model from its spec and state dict (the inverse of ``model.spec()`` + ``state_dict()``)."""
    kind = spec.get("kind")
    prefix = "" if kind == "circuit" else "circuit."
    circuit_state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    circuit = Circuit.from_spec(spec["circuit"], circuit_state)
    model: Model
    if kind == "circuit":
        model = circuit
    elif kind == "flow":
        model = Flow(circuit, spec["solver"], spec["gradient"])
    elif kind == "network":
        model = Network(circuit, spec["readout"], spec["solver"], spec["gradient"])
    else:
        raise CheckpointError(f"unknown model kind {kind!r} in checkpoint; expected circuit, flow or network")
    _load_exact(model, tensors)
    return model


def _load_exact(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"state does not match the model: missing {missing}, unexpected {unexpected}")
    for name, value in tensors.items():
        if value.shape != expected[name].shape:
            raise CheckpointError(
                f"tensor {name} has shape {tuple(value.shape)} but the model needs {tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors)

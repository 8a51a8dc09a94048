"""The project's tensor files: safetensors with a JSON spec and JSON metadata in the header.

safetensors holds plain tensors and a string header, so reading one can never execute code. Every
saved module (models, diffusion score models, VAEs, MLP baselines, latent data sets) uses this one
layout; the ``format`` tag tells the families apart and the spec's ``kind`` the modules within one.
What to build from a spec is the caller's business ([`kirchhoffnet.checkpoint`][kirchhoffnet.checkpoint] for models).
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

from kirchhoffnet._schema import expect
from kirchhoffnet.errors import CheckpointError, shown
from kirchhoffnet.io._atomic import atomic_write

FORMAT = "kirchhoffnet-checkpoint-1"


def write_tensors(
    path: str | os.PathLike[str],
    tensors: dict[str, torch.Tensor],
    spec: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    fmt: str = FORMAT,
) -> Path:
    """Write ``tensors`` (copied to contiguous CPU memory) with ``spec`` and ``metadata`` atomically."""
    data = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    header = {"format": fmt, "spec": json.dumps(spec), "metadata": json.dumps(metadata or {})}
    return atomic_write(path, lambda tmp: save_file(data, str(tmp), metadata=header))


def read_tensors(
    path: str | os.PathLike[str], fmt: str = FORMAT, what: str = "a kirchhoffnet checkpoint"
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """``(spec, tensors, metadata)`` of a file of format ``fmt``, its header validated (a spec and
    metadata that are JSON objects); the tensors are checked by the module they are loaded into."""
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
    if header.get("format") != fmt:
        raise CheckpointError(f"{path} is a safetensors file but not {what} (format {shown(header.get('format'))})")
    try:
        spec = json.loads(header["spec"])
        metadata = json.loads(header.get("metadata", "{}"))
    except (KeyError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} has a corrupt header: {shown(str(exc), 200)}") from None
    expect(spec, dict, f"{path}: the header's spec")
    expect(metadata, dict, f"{path}: the header's metadata")
    return spec, tensors, metadata


def check_names_and_shapes(
    expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], named: str, against: str
) -> None:
    """``tensors`` has exactly the names and shapes of ``expected``, or
    [`CheckpointError`][kirchhoffnet.errors.CheckpointError] (``named`` does not match ``against``)."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{named} does not match {against}: missing {shown(missing, 200)}, unexpected {shown(unexpected, 200)}"
        )
    for name, value in tensors.items():
        if value.shape != expected[name].shape:
            raise CheckpointError(
                f"{named} does not match {against}: tensor {name} has shape {tuple(value.shape)} "
                f"but needs {tuple(expected[name].shape)}"
            )


def differing_buffer(model: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """The first buffer of ``model`` (topology, capacitances) whose value in ``state`` differs, compared in the
    state's dtype; None when all agree. Names and shapes are checked before (`check_names_and_shapes`)."""
    for name, buffer in model.named_buffers():
        if not torch.equal(buffer.cpu().to(state[name].dtype), state[name].cpu()):
            return name
    return None


def load_exact(
    model: nn.Module, tensors: dict[str, torch.Tensor], source: str | None = None, against: str = "the model"
) -> None:
    """Load ``tensors`` into ``model``: exactly its names, shapes and kinds of dtype, or
    [`CheckpointError`][kirchhoffnet.errors.CheckpointError] (``source`` does not match ``against``). The values are
    checked by the modules they enter (`Slice.check_state`), before any is copied in."""
    named = source or "the state"
    expected = model.state_dict()
    check_names_and_shapes(expected, tensors, named, against)
    for name, value in tensors.items():
        if value.is_floating_point() != expected[name].is_floating_point():
            raise CheckpointError(f"{named}: tensor {name} has dtype {value.dtype}, not like {expected[name].dtype}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{named}: tensor {name} holds NaN or infinite values; a model's state is finite")
    try:
        model.load_state_dict(tensors)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}" if source else str(exc)) from None

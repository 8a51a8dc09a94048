"""Checkpoints of diffusion-side modules (score model, VAE, classifier) in the project's safetensors format.

The header is the one :mod:`kirchhoffnet.io.checkpoint` writes (format tag, JSON spec, JSON metadata),
so :func:`kirchhoffnet.io.read` opens these files too; the spec's ``kind`` says which module to rebuild.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import Tensor, nn

from kirchhoffnet.errors import CheckpointError
from kirchhoffnet.io import atomic_write, read
from kirchhoffnet.io.checkpoint import FORMAT


def save_module(
    module: nn.Module, spec: dict[str, Any], path: str | os.PathLike[str], metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``module``'s state with its ``spec`` (which must name a ``kind``) atomically."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items()}
    header = {"format": FORMAT, "spec": json.dumps(spec), "metadata": json.dumps(metadata or {})}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def load_state(module: nn.Module, path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Load the tensors of a checkpoint of ``kind`` into ``module``; returns the checkpoint's spec."""
    spec, tensors, _ = read(path)
    if spec.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {spec.get('kind')!r}, not a {kind!r}")
    expected = module.state_dict()
    if set(expected) != set(tensors) or any(tensors[k].shape != v.shape for k, v in expected.items()):
        raise CheckpointError(
            f"{path} does not match the {kind} it is loaded into (different sizes or names); "
            "was it written by another version or config?"
        )
    module.load_state_dict(tensors)
    return spec


def read_spec(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """The spec of a checkpoint of ``kind`` (to build the module before loading its state)."""
    spec, _, _ = read(path)
    if spec.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {spec.get('kind')!r}, not a {kind!r}")
    return spec


def save_tensors(tensors: dict[str, Tensor], path: str | os.PathLike[str], kind: str) -> Path:
    """Plain named tensors (e.g. a latent data set) in the same format, spec ``{"kind": kind}``."""
    data = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    header = {"format": FORMAT, "spec": json.dumps({"kind": kind}), "metadata": "{}"}
    return atomic_write(path, lambda tmp: save_file(data, str(tmp), metadata=header))


def load_tensors(path: str | os.PathLike[str], kind: str) -> dict[str, Tensor]:
    """The tensors written by :func:`save_tensors`."""
    spec, tensors, _ = read(path)
    if spec.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {spec.get('kind')!r}, not a {kind!r}")
    return tensors

"""Checkpoints of diffusion-side modules (score model, VAE, classifier) in the project's safetensors format.

They are the project's tensor files (`kirchhoffnet.io.tensorfile`: format tag, JSON spec, JSON
metadata), like the models' checkpoints; the spec's ``kind`` says which module to rebuild.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from kirchhoffnet._schema import check_arguments, entry
from kirchhoffnet.checkpoint import MODEL_KINDS
from kirchhoffnet.errors import CheckpointError, shown
from kirchhoffnet.io import load_exact, read_tensors, write_tensors


def save_module(
    module: nn.Module, spec: dict[str, Any], path: str | os.PathLike[str], metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``module``'s state with its ``spec`` (which must name a ``kind``) atomically."""
    return write_tensors(path, module.state_dict(), spec, metadata)


def load_state(module: nn.Module, path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Load the tensors of a checkpoint of ``kind`` into ``module``; returns the checkpoint's spec."""
    spec, tensors, _ = read_tensors(path)
    _check_kind(spec, path, kind)
    load_exact(module, tensors, source=str(path), against=f"the {kind} it is loaded into (another version or config?)")
    return spec


def read_spec(path: str | os.PathLike[str], kind: str, sections: dict[str, type] | None = None) -> dict[str, Any]:
    """The spec of a checkpoint of ``kind`` (to build the module before loading its state).

    Args:
        sections: spec key → the constructor its mapping is passed to as keyword arguments; each is
            checked by `check_arguments` so that a hostile spec fails here, not in the constructor.
    """
    spec, tensors, _ = read_tensors(path)
    _check_kind(spec, path, kind)
    limit = sum(t.numel() for t in tensors.values())
    for key, constructor in (sections or {}).items():
        try:
            check_arguments(entry(spec, key, dict, "spec"), constructor, f"spec.{key}", limit)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    return spec


def save_tensors(tensors: dict[str, Tensor], path: str | os.PathLike[str], kind: str) -> Path:
    """Plain named tensors (e.g. a latent data set) in the same format, spec ``{"kind": kind}``."""
    return write_tensors(path, tensors, {"kind": kind})


def load_tensors(path: str | os.PathLike[str], kind: str, names: tuple[str, ...]) -> dict[str, Tensor]:
    """The tensors written by `save_tensors`: exactly ``names``, floating-point ones finite."""
    spec, tensors, _ = read_tensors(path)
    _check_kind(spec, path, kind)
    if sorted(tensors) != sorted(names):
        raise CheckpointError(f"{path} holds tensors {shown(sorted(tensors), 200)}; a {kind} file holds {list(names)}")
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(value.isfinite().all()):
            raise CheckpointError(f"{path}: tensor {name} holds NaN or infinite values")
    return tensors


def _check_kind(spec: dict[str, Any], path: str | os.PathLike[str], kind: str) -> None:
    found = spec.get("kind")
    if found != kind:
        hint = "; it is a model of `kirchhoffnet train`, read by eval/sample/hw/spice" if found in MODEL_KINDS else ""
        raise CheckpointError(f"{path} holds a {shown(found)}, not a {kind!r}{hint}")

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
from kirchhoffnet.errors import CheckpointError, KirchhoffError, shown
from kirchhoffnet.io.atomic import atomic_write
from kirchhoffnet.models import Flow, Network
from kirchhoffnet.schema import count, entry, expect
from kirchhoffnet.solve import Solver

FORMAT = "kirchhoffnet-checkpoint-1"
SCORE_KINDS = ("score-model", "score-circuit")
"""Spec kinds of the diffusion score models (:mod:`kirchhoffnet.diffusion`), which share this file format."""
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
            f"{path} is a safetensors file but not a kirchhoffnet checkpoint (format {shown(header.get('format'))})"
        )
    try:
        spec = json.loads(header["spec"])
        metadata = json.loads(header.get("metadata", "{}"))
    except (KeyError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} has a corrupt header: {shown(str(exc), 200)}") from None
    expect(spec, dict, f"{path}: the header's spec")
    expect(metadata, dict, f"{path}: the header's metadata")
    return spec, tensors, metadata


MODEL_KINDS = ("circuit", "flow", "network")


def load(path: str | os.PathLike[str]) -> Model:
    """Rebuild the model saved by :func:`save`; raises :class:`CheckpointError` on any mismatch."""
    spec, tensors, _ = read(path)
    try:
        return build(spec, tensors)
    except KirchhoffError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def build(spec: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Model:
    """A model from its spec and state dict (the inverse of ``model.spec()`` + ``state_dict()``).

    The spec is checked key by key before anything is constructed, and the tensors by the slices
    they are loaded into (:meth:`Slice.check_state`): a hostile file ends in :class:`CheckpointError`.
    """
    kind = check_kind(spec)
    prefix = "" if kind == "circuit" else "circuit."
    circuit_state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    circuit = Circuit.from_spec(entry(spec, "circuit", dict, "spec"), circuit_state)
    model: Model
    if kind == "circuit":
        model = circuit
    else:
        solver = _solver_settings(entry(spec, "solver", dict, "spec"))
        gradient = entry(spec, "gradient", str, "spec")
        if kind == "flow":
            model = Flow(circuit, solver, gradient)
        else:
            readout = _readout_settings(entry(spec, "readout", (str, dict, type(None)), "spec"), tensors)
            model = Network(circuit, readout, solver, gradient)
    load_exact(model, tensors)
    return model


def check_kind(spec: Any) -> str:
    """The ``kind`` of a model spec; a checkpoint of another kind of run (a diffusion score model)
    is refused with the command that reads it."""
    kind = entry(spec, "kind", str, "spec")
    if kind in MODEL_KINDS:
        return kind
    if kind in SCORE_KINDS:
        raise CheckpointError(
            f"it holds a diffusion {kind} of `kirchhoffnet diffusion train`, not a circuit, flow or network; "
            "give its run directory to `kirchhoffnet diffusion sample|evaluate|spice` "
            "(or to `kirchhoffnet hw report` for a score circuit)"
        )
    raise CheckpointError(f"unknown model kind {shown(kind)} in checkpoint; expected circuit, flow or network")


def _solver_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The spec's solver settings, each of the type its :class:`Solver` field holds."""
    defaults = Solver().to_dict()
    for key, value in settings.items():
        if key not in defaults:
            raise CheckpointError(f"spec.solver has unknown setting {shown(key)}; known: {', '.join(defaults)}")
        default = defaults[key]
        kinds = (float, type(None)) if default is None else float if isinstance(default, float) else type(default)
        expect(value, kinds, f"spec.solver.{key}")
    return settings


def _readout_settings(readout: str | dict[str, Any] | None, tensors: dict[str, torch.Tensor]) -> Any:
    """A readout spec whose sizes are positive integers the checkpoint's tensors could hold (a hostile
    size would otherwise allocate its weights before the shapes are compared)."""
    if not isinstance(readout, dict):
        return readout
    expect(readout.get("name"), str, "spec.readout.name")
    limit = sum(t.numel() for t in tensors.values())
    for key, value in readout.items():
        if key != "name" and not 1 <= count(value, f"spec.readout.{key}") <= limit:
            raise CheckpointError(f"spec.readout.{key} is {value}, more than the checkpoint's {limit} values hold")
    return readout


def load_exact(
    model: nn.Module, tensors: dict[str, torch.Tensor], source: str | None = None, against: str = "the model"
) -> None:
    """Load ``tensors`` into ``model``: exactly its names, shapes and kinds of dtype, or :class:`CheckpointError`
    (``source`` does not match ``against``). The values are checked by the modules they enter
    (:meth:`Slice.check_state`), before any is copied in."""
    named = source or "the state"
    expected = model.state_dict()
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
        if value.is_floating_point() != expected[name].is_floating_point():
            raise CheckpointError(f"{named}: tensor {name} has dtype {value.dtype}, not like {expected[name].dtype}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{named}: tensor {name} holds NaN or infinite values; a model's state is finite")
    try:
        model.load_state_dict(tensors)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}" if source else str(exc)) from None

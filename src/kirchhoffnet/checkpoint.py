"""Saved models: a circuit, flow or network in one self-contained file.

A checkpoint is a tensor file (`kirchhoffnet.io.tensorfile`) whose spec holds the model's
structure (topologies as tensors, device families and solver settings as JSON), so ``load(path)``
rebuilds the model with no config file. This module sits above the models, which it builds; the
file format below them knows nothing of them. Opening whatever holds a saved model (a run
directory, an original result) is [`kirchhoffnet.open`][kirchhoffnet.open]'s ([`kirchhoffnet.runs`][kirchhoffnet.runs]).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from kirchhoffnet._schema import count, entry, expect
from kirchhoffnet.circuit import Circuit
from kirchhoffnet.errors import CheckpointError, KirchhoffError, shown
from kirchhoffnet.io.tensorfile import load_exact, read_tensors, write_tensors
from kirchhoffnet.models import Flow, Network
from kirchhoffnet.solve import Solver, gradient_method

MODEL_KINDS = ("circuit", "flow", "network")
SCORE_KINDS = ("score-model", "score-circuit")
"""Spec kinds of the diffusion score models ([`kirchhoffnet.diffusion`][kirchhoffnet.diffusion]), which share the file
format."""
RUN_MODEL = "model.safetensors"
"""The file name of the trained model inside a run directory."""
Model = Circuit | Flow | Network


def save(model: Model, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a Circuit, Flow or Network) atomically to a ``.safetensors`` file.

    Args:
        metadata: extra JSON-serialisable information (training config, epoch, metrics).
    """
    spec = model.spec() if not isinstance(model, Circuit) else {"kind": "circuit", "circuit": model.spec()}
    return write_tensors(path, model.state_dict(), spec, metadata)


def load(path: str | os.PathLike[str]) -> Model:
    """Rebuild the model saved by [`save`][kirchhoffnet.checkpoint.save]; raises
    [`CheckpointError`][kirchhoffnet.errors.CheckpointError] on any mismatch."""
    spec, tensors, _ = read_tensors(path)
    return rebuild(spec, tensors, path)


def rebuild(spec: dict[str, Any], tensors: dict[str, torch.Tensor], source: str | os.PathLike[str]) -> Model:
    """[`build`][kirchhoffnet.checkpoint.build] of what was read from ``source``; its errors name the file."""
    try:
        return build(spec, tensors)
    except KirchhoffError as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def build(spec: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Model:
    """A model from its spec and state dict (the inverse of ``model.spec()`` + ``state_dict()``).

    The spec is checked key by key before anything is constructed, and the tensors by the slices
    they are loaded into (`Slice.check_state`): a hostile file ends in
    [`CheckpointError`][kirchhoffnet.errors.CheckpointError].
    """
    kind = check_kind(spec)
    prefix = "" if kind == "circuit" else "circuit."
    circuit_state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    circuit = Circuit.from_spec(entry(spec, "circuit", dict, "spec"), circuit_state, prefix)
    model: Model
    if kind == "circuit":
        model = circuit
    else:
        solver = _solver_settings(entry(spec, "solver", dict, "spec"))
        gradient = gradient_method(entry(spec, "gradient", str, "spec"), solver.pop("adjoint_seminorm", False))
        if kind == "flow":
            model = Flow(circuit, solver, gradient)
        else:
            readout = _readout_settings(entry(spec, "readout", (str, dict, type(None)), "spec"), tensors)
            model = Network(circuit, readout, solver, gradient)
    floating = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(floating) == 1:  # a float64 model stays float64: loading casts to the module's dtype
        model = model.to(floating.pop())
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
            f"it holds a diffusion {kind} (a run of a diffusion config), not a circuit, flow or network; "
            "give its run directory to `kirchhoffnet diffusion sample|evaluate|spice` "
            "(or to `kirchhoffnet hw report` for a score circuit)"
        )
    raise CheckpointError(f"unknown model kind {shown(kind)} in checkpoint; expected circuit, flow or network")


def _solver_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A copy of the spec's solver settings, each of the type its [`Solver`][kirchhoffnet.Solver] field holds, and
    ``adjoint_seminorm`` (`gradient_spec`)."""
    defaults = {**Solver().to_dict(), "adjoint_seminorm": False}
    for key, value in settings.items():
        if key not in defaults:
            raise CheckpointError(f"spec.solver has unknown setting {shown(key)}; known: {', '.join(defaults)}")
        default = defaults[key]
        kinds = (float, type(None)) if default is None else float if isinstance(default, float) else type(default)
        expect(value, kinds, f"spec.solver.{key}")
    return dict(settings)


def _readout_settings(readout: str | dict[str, Any] | None, tensors: dict[str, torch.Tensor]) -> Any:
    """A readout spec whose sizes are positive integers the checkpoint's tensors could hold (a hostile
    size would otherwise allocate its weights before the shapes are compared); its logit ``scale`` is a
    number (the readout checks it)."""
    if not isinstance(readout, dict):
        return readout
    expect(readout.get("name"), str, "spec.readout.name")
    limit = sum(t.numel() for t in tensors.values())
    for key, value in readout.items():
        if key == "scale":
            expect(value, float, "spec.readout.scale")
        elif key != "name" and not 1 <= count(value, f"spec.readout.{key}") <= limit:
            raise CheckpointError(f"spec.readout.{key} is {value}, more than the checkpoint's {limit} values hold")
    return readout

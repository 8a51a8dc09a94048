"""Diffusion run directories: build and load score models ([`sampling`][kirchhoffnet.diffusion.sampling] samples them,
`evaluate` scores them).

A diffusion run is a run of the shared trainer (``kirchhoffnet train configs/diffusion/ring.yaml``, see
[`DiffusionTask`][kirchhoffnet.tasks.diffusion.DiffusionTask]): ``config.yaml``, ``checkpoint.pt``,
``model.safetensors`` (the score model with its spec), ``metrics.json`` and plots; the latent task adds
its VAE, judge and latents. ``kirchhoffnet diffusion evaluate`` adds ``evaluation.json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from kirchhoffnet._yamlfile import read_yaml_mapping
from kirchhoffnet.checkpoint import MODEL_KINDS, RUN_MODEL
from kirchhoffnet.config import DiffusionConfig, parse_config, preflight
from kirchhoffnet.data.points import sample_points
from kirchhoffnet.data.seeds import draw_seed
from kirchhoffnet.diffusion.checkpoint import load_state, read_spec
from kirchhoffnet.diffusion.score import ScoreModel, ScoreNet
from kirchhoffnet.diffusion.score_circuit.circuit import ScoreCircuit
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import CheckpointError, ConfigError, KirchhoffError
from kirchhoffnet.io import read_tensors

RUN_CONFIG = "config.yaml"
RUN_METRICS = "evaluation.json"
"""What ``kirchhoffnet diffusion evaluate`` writes (the trainer's ``metrics.json`` is the training's)."""
SCORE_KINDS = {"crossbar": "score-model", "kirchhoffnet": "score-circuit"}
"""``model.kind`` of the config → ``kind`` of the checkpoint's spec."""


@dataclass
class Run:
    """A trained run loaded from its directory."""

    path: Path
    config: DiffusionConfig
    model: ScoreModel | CircuitScoreModel


def build_model(config: DiffusionConfig) -> ScoreModel | CircuitScoreModel:
    """An untrained score model as the config describes it (initial weights from ``config.seed``), or the
    model of ``score_matching.init_from`` to fine-tune."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    sde = VPSDE(**config.sde.model_dump())
    kwargs = {"dim": 2, "num_classes": config.num_classes, "generator": generator, **config.model.model_dump()}
    kind = kwargs.pop("kind")
    model = (
        CircuitScoreModel(ScoreCircuit(**kwargs), sde)
        if kind == "kirchhoffnet"
        else ScoreModel(ScoreNet(**kwargs), sde)
    )
    start = config.score_matching.init_from
    if start is not None:
        if not (Path(start) / RUN_MODEL).is_file():
            raise ConfigError(
                f"score_matching.init_from: {Path(start) / RUN_MODEL} does not exist; give a diffusion run directory"
            )
        load_state(model, Path(start) / RUN_MODEL, SCORE_KINDS[kind])
    return model


def load_model(path: Path, config: DiffusionConfig) -> ScoreModel | CircuitScoreModel:
    """The score model of a checkpoint, rebuilt from the checkpoint's own spec, which must be of the
    config's ``model.kind``."""
    kind = SCORE_KINDS[config.model.kind]
    sections = {"circuit" if kind == "score-circuit" else "net": ScoreCircuit if kind == "score-circuit" else ScoreNet}
    spec = read_spec(path, kind, {**sections, "sde": VPSDE})
    try:
        model = CircuitScoreModel.from_spec(spec) if kind == "score-circuit" else ScoreModel.from_spec(spec)
    except KirchhoffError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    load_state(model, path, kind)
    return model


def reference_points(config: DiffusionConfig, draw: str = "reference") -> Tensor:
    """``evaluate.num_samples`` fresh points of the run's data, drawn from ``evaluate.reference_seed``: the
    ``reference`` every sampler's KL is measured against, or the second set of the metric's noise ``floor``."""
    seed = draw_seed(config.evaluate.reference_seed, draw)
    return sample_points(config.data, config.evaluate.num_samples, seed=seed)


def is_diffusion_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a run directory of a diffusion config (its checkpoint holds a score model)."""
    model = Path(path) / RUN_MODEL
    if not ((Path(path) / RUN_CONFIG).is_file() and model.is_file()):
        return False
    try:
        return read_tensors(model)[0].get("kind") in SCORE_KINDS.values()
    except KirchhoffError:
        return False


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """The config and trained model of a diffusion run directory."""
    path = Path(run_dir)
    if not (path / RUN_CONFIG).is_file() or not (path / RUN_MODEL).is_file():
        raise CheckpointError(
            f"{path} is not a trained diffusion run directory (needs {RUN_CONFIG} and {RUN_MODEL}); "
            "create one with `kirchhoffnet train configs/diffusion/ring.yaml --out DIR`"
        )
    found = read_tensors(path / RUN_MODEL)[0].get("kind")
    if found in MODEL_KINDS:
        raise CheckpointError(
            f"{path} is a run of a KirchhoffNet task (its model is a {found}), not of a diffusion config; "
            "give it to `kirchhoffnet eval|sample|hw|spice`"
        )
    config = parse_config(read_yaml_mapping(path / RUN_CONFIG, empty={}), str(path / RUN_CONFIG))
    if not isinstance(config, DiffusionConfig):
        raise CheckpointError(f"{path / RUN_CONFIG} is a {config.task} config, not a diffusion one")
    preflight(config, training=False)
    return Run(path, config, load_model(path / RUN_MODEL, config))

"""Run directories: train a configured model and load it (:mod:`.sampling` samples it, :mod:`.evaluate`
scores it).

A run directory holds ``config.yaml`` (the resolved config), ``model.safetensors`` (the score model,
written atomically), ``metrics.json`` and plots. The latent task adds its VAE and judging classifier.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

from kirchhoffnet.checkpoint import MODEL_KINDS, RUN_MODEL
from kirchhoffnet.diffusion import plots
from kirchhoffnet.diffusion.checkpoint import load_state, read_spec, save_module
from kirchhoffnet.diffusion.conditional import CLASSIFIER_FILE, LATENTS_FILE, VAE_FILE, latent_batches, prepare
from kirchhoffnet.diffusion.config import DiffusionConfig, parse_config
from kirchhoffnet.diffusion.ring import sample_points
from kirchhoffnet.diffusion.score import ScoreModel, ScoreNet
from kirchhoffnet.diffusion.score_circuit.circuit import ScoreCircuit
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.diffusion.train import Batches, train_score
from kirchhoffnet.errors import CheckpointError, ConfigError, KirchhoffError
from kirchhoffnet.io import read_tensors, write_json_atomic, write_text_atomic
from kirchhoffnet.io.lock import DirectoryLock, refuse_previous_run
from kirchhoffnet.io.paths import check_out_dir
from kirchhoffnet.yamlfile import read_yaml_mapping

RUN_CONFIG = "config.yaml"
RUN_METRICS = "metrics.json"
TRAIN_OUTPUTS = (RUN_CONFIG, RUN_MODEL, "train.json", "loss.png", VAE_FILE, CLASSIFIER_FILE, LATENTS_FILE)
"""What ``train`` writes: the targets whose torn temporary files the next ``train`` removes."""


@dataclass
class Run:
    """A trained run loaded from its directory."""

    path: Path
    config: DiffusionConfig
    model: ScoreModel | CircuitScoreModel


def build_model(config: DiffusionConfig) -> ScoreModel | CircuitScoreModel:
    """An untrained score model as the config describes it (initial weights from ``config.seed``)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    if config.circuit is not None:
        return CircuitScoreModel(
            ScoreCircuit(dim=2, num_classes=config.num_classes, generator=generator, **config.circuit.model_dump()),
            config.sde.build(),
        )
    net = ScoreNet(
        dim=2, num_classes=config.num_classes, generator=generator, **config.model.model_dump(exclude={"kind"})
    )
    return ScoreModel(net, config.sde.build())


def point_batches(task: str) -> Batches:
    """Fresh batches of the 2-D task's points, each drawn with a seed from the training generator."""

    def batches(batch_size: int, generator: torch.Generator) -> tuple[Tensor, None]:
        return sample_points(task, batch_size, seed=int(torch.randint(0, 2**62, (1,), generator=generator))), None

    return batches


def train(config: DiffusionConfig, out_dir: str | os.PathLike[str], progress: bool = True) -> dict[str, Any]:
    """Train the configured model and write the run directory; returns the training metrics.

    Raises:
        TrainingError: ``out_dir`` already holds another run's files (finished or not), which a new run
            would replace, or another process is training into it.
        StorageError: ``out_dir`` cannot be written (a file, read-only, a full disk, ...).
    """
    out = check_out_dir(out_dir)
    _refuse_trained(out)  # before the lock, which would touch the directory
    lock = DirectoryLock(out, TRAIN_OUTPUTS)
    try:
        _refuse_trained(out)  # again under the lock: a second `train` may have finished in between
        return _train(config, out, progress)
    finally:
        lock.release()


def _refuse_trained(out: Path) -> None:
    refuse_previous_run(out, TRAIN_OUTPUTS, "choose another --out, or delete that directory to train it again")


def _train(config: DiffusionConfig, out: Path, progress: bool) -> dict[str, Any]:
    """The training itself, under the run directory's lock."""
    write_text_atomic(out / RUN_CONFIG, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    model = build_model(config)
    if config.train.init_from is not None:
        start_from = Path(config.train.init_from) / RUN_MODEL
        if not start_from.is_file():
            raise ConfigError(f"train.init_from: {start_from} does not exist; give a run directory made by `train`")
        load_state(model, start_from, "score-model")
    metrics: dict[str, Any] = {"task": config.task}
    if config.unconditional:
        batches = point_batches(config.task)
    else:
        data, prepared = prepare(config, out, progress)
        metrics.update(prepared)
        batches = latent_batches(data)
    start = time.perf_counter()
    losses = train_score(model, batches, config.train.settings(), seed=config.seed, progress=progress)
    elapsed = time.perf_counter() - start
    metrics |= {
        "train_time_s": elapsed,
        "train_steps": len(losses),
        "final_loss": float(np.mean(losses[-min(1000, len(losses)) :])),
        "noise_aware": config.train.noise_aware is not None,
    }
    save_module(model, model.spec(), out / RUN_MODEL, metadata=metrics)
    write_json_atomic(out / "train.json", metrics)
    plots.loss_curve(losses, out / "loss.png")
    return metrics


def is_diffusion_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a run directory of ``kirchhoffnet diffusion train`` (its checkpoint holds a score model)."""
    model = Path(path) / RUN_MODEL
    if not ((Path(path) / RUN_CONFIG).is_file() and model.is_file()):
        return False
    try:
        return read_tensors(model)[0].get("kind") in ("score-model", "score-circuit")
    except KirchhoffError:
        return False


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """The config and trained model of a run directory."""
    path = Path(run_dir)
    if not (path / RUN_CONFIG).is_file() or not (path / RUN_MODEL).is_file():
        raise CheckpointError(
            f"{path} is not a diffusion run directory (needs {RUN_CONFIG} and {RUN_MODEL}); "
            "create one with `kirchhoffnet diffusion train CONFIG --out DIR`"
        )
    found = read_tensors(path / RUN_MODEL)[0].get("kind")
    if found in MODEL_KINDS:
        raise CheckpointError(
            f"{path} is a run of `kirchhoffnet train` (its model is a {found}), not of `kirchhoffnet diffusion train`; "
            "give it to `kirchhoffnet eval|sample|hw|spice`"
        )
    saved = read_yaml_mapping(path / RUN_CONFIG, empty={})
    config = parse_config(saved, str(path / RUN_CONFIG))
    _check_complete(saved, path / RUN_CONFIG)
    kind = "score-circuit" if config.circuit is not None else "score-model"
    sections = {"circuit" if config.circuit is not None else "net": ScoreCircuit if config.circuit else ScoreNet}
    spec = read_spec(path / RUN_MODEL, kind, {**sections, "sde": VPSDE})
    try:
        model = CircuitScoreModel.from_spec(spec) if config.circuit is not None else ScoreModel.from_spec(spec)
    except KirchhoffError as exc:
        raise CheckpointError(f"{path / RUN_MODEL}: {exc}") from None
    load_state(model, path / RUN_MODEL, kind)
    return Run(path, config, model)


def _check_complete(saved: dict[str, Any], path: Path) -> None:
    """A run's config.yaml is the whole config ``diffusion train`` wrote; one with sections missing
    (truncated, hand-edited) would silently evaluate the model with defaults it was not trained with."""
    missing = sorted(set(DiffusionConfig.model_fields) - set(saved))
    if missing:
        raise CheckpointError(
            f"{path} lacks {', '.join(missing)}: it is not the whole config `diffusion train` wrote (truncated or "
            "edited?), and the model cannot be evaluated with defaults it was not trained with"
        )

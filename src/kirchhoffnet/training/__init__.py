"""Training runs: ``train(config)`` from Python, ``kirchhoffnet train CONFIG`` from the shell.

A run lives in a directory (default ``runs/<name>``) holding its resolved config, a resumable
checkpoint, the trained model, ``metrics.json``, ``metrics.csv`` and plots; see `rundir`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from kirchhoffnet.checkpoint import RUN_MODEL
from kirchhoffnet.config import Config, RunConfig, apply_overrides, as_config, changed_solver, preflight
from kirchhoffnet.config.load import read_config_mapping
from kirchhoffnet.data.supplied import as_parts
from kirchhoffnet.errors import CheckpointError, ConfigError, shown
from kirchhoffnet.io import write_json_atomic
from kirchhoffnet.io.paths import check_free_space, check_out_dir, prepare_out_dir
from kirchhoffnet.runs import is_run_directory, read_run_config
from kirchhoffnet.runs import open as open_saved
from kirchhoffnet.runtime import threads
from kirchhoffnet.tasks import Task
from kirchhoffnet.training._distributed import join, leave, settle, share_failure
from kirchhoffnet.training._loop import RunResult, Trainer
from kirchhoffnet.training._state import CHECKPOINT, seed_everything
from kirchhoffnet.training.rundir import METRICS, RunLock, prepare, record_run


def train(
    config: Config | dict[str, Any] | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    tensorboard: bool | None = None,
    data: Any = None,
) -> RunResult:
    """Train a model as a config describes and write its run directory.

    Args:
        config: a config object, a mapping, or a YAML path (validated either way).
        data: regression or classification data in memory (the config's ``data.source`` is ``memory``;
            a mapping or YAML file without a ``data`` section gets it): ``(inputs, targets)`` of arrays or
            tensors, split with ``data.seed`` as a file is; a map-style ``torch.utils.data.Dataset`` of
            ``(input, target)`` items; or ``{"train": ..., "val": ..., "test": ...}`` of either, used as
            given. Regression inputs are (N, d), targets (N,); classification inputs (N, H, W) or
            (N, C, H, W) (uint8 0..255, or floats used as they are), labels (N,) in 0..K−1. Their
            fingerprint goes to ``data.json``; a resume must be given the same data.
        out: run directory; default ``runs/<config name or task>``.
        resume: continue the run in ``out`` from its checkpoint (the config must be the same).
        progress: show progress (a bar on a terminal, lines elsewhere: `kirchhoffnet._progress`).
        on_step: called after every optimiser step with ``{"epoch", "step", "loss"}``.
        on_epoch: called after every epoch with its full history row (as ``metrics.csv`` logs it):
            ``epoch``, ``train_loss``, ``val_loss`` and ``validation`` (None between validations), ``lr``,
            ``grad_norm``, ``nfe_forward``, ``nfe_backward``, ``skipped``, ``time_s``. On rank 0 and the others.
        tensorboard: write TensorBoard events to ``out/tensorboard``: None when the ``tensorboard``
            package is installed (``pip install 'kirchhoffnet[tensorboard]'``), True to require it, False never.

    Returns:
        The run directory, the trained model (best validation if early stopping restores it) and
        the metrics written to ``metrics.json``. Under ``torchrun`` every rank trains; rank 0
        writes the files and returns the metrics, the others return empty metrics.

    Raises:
        ConfigError: an invalid config. TrainingError: a busy run directory, a resume that does
            not match, or a run stopped by non-finite losses. DataError: missing data files.
    """
    supplied = None if data is None else as_parts(data)  # bad arrays fail before anything is written
    config = as_config(with_memory_source(config) if data is not None else config)
    check_data_source(config, supplied is not None)
    preflight(config)  # before the run directory, the data or the circuit are touched
    run_dir = Path(out) if out is not None else Path("runs") / config.label
    cluster = join(config.device)
    lock = trainer = None
    try:
        failure = None
        if cluster.leader:
            try:
                lock = RunLock(run_dir)
                prepare(run_dir, config, resume)
            except Exception as exc:
                if not cluster.active:
                    raise
                failure = str(exc)
        share_failure(failure, cluster)
        with threads(config.threads):
            trainer = Trainer(config, cluster, run_dir, progress, on_step, on_epoch, tensorboard, supplied, resume)
            failure = None
            if cluster.leader:
                try:
                    record_run(run_dir, config, trainer.task.data_fingerprint, resume)
                except Exception as exc:
                    if not cluster.active:
                        raise
                    failure = str(exc)
            share_failure(failure, cluster)
            if resume:
                trainer.resume()
            trainer.fit()
            metrics = trainer.finish()
            settle(cluster)
        return RunResult(run_dir, trainer.model, metrics)
    finally:
        if lock is not None:
            lock.release()
        if trainer is not None:
            trainer.close()
        leave(cluster)


def with_memory_source(config: Config | dict[str, Any] | str | os.PathLike[str]) -> Config | dict[str, Any]:
    """A config mapping or file without a ``data`` section gets ``data: {source: memory}`` (the arrays
    handed to [`train`][kirchhoffnet.training.train]); a config object must already say so."""
    if isinstance(config, RunConfig):
        return cast(Config, config)
    mapping = dict(config) if isinstance(config, dict) else read_config_mapping(config)
    mapping.setdefault("data", {"source": "memory"})
    return mapping


def check_data_source(config: Config, supplied: bool) -> None:
    """Arrays are handed over exactly when the config's data source is ``memory``: one line otherwise."""
    source = getattr(getattr(config, "data", None), "source", None)
    if supplied and source != "memory":
        raise ConfigError(
            f"data: train(data=...) takes regression or classification data with data.source memory; this "
            f"{config.task} config's data source is {source or 'its own'}"
        )
    if source == "memory" and not supplied:
        raise ConfigError(
            "data.source is memory: this run's data live in Python, so the command line cannot train or resume it; "
            "use kn.train(config, out, data=..., resume=...)"
        )


def open_run(run_dir: str | os.PathLike[str], device: str = "cpu") -> tuple[Config, Task, nn.Module]:
    """The config, prepared task and trained model of a finished run directory
    ([`kirchhoffnet.open`][kirchhoffnet.open]), with the global RNGs seeded by the run's seed as its evaluation was."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        read_run_config(run_dir)  # names a missing or broken config.yaml
        raise CheckpointError(f"checkpoint {run_dir / RUN_MODEL} does not exist")
    opened = open_saved(run_dir, device=device)
    assert opened.task is not None  # a run of `kirchhoffnet train` has its task
    seed_everything(opened.config.seed)
    return opened.config, opened.task, opened.model


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a run's config.yaml and model.safetensors (of any task:
    [`kirchhoffnet.runs.kind_of`][kirchhoffnet.runs.kind_of] tells diffusion runs apart)."""
    return is_run_directory(path)


def evaluate_run(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Re-evaluate a run's model on its held-out data; metrics.json and plots go to ``out``
    (default ``RUN_DIR/eval``).

    ``overrides`` (the CLI's ``--set``) change the solver only, ``solver.KEY=VALUE``: a model trained on a fixed
    step is then scored under an adaptive solve, which follows the circuit's physics to its tolerance; the solver
    used is recorded in metrics.json. The model and the data stay the run's.
    """
    out_dir = check_out_dir(Path(out) if out is not None else Path(run_dir) / "eval")
    config, task, model = open_run(run_dir)
    solver = _evaluation_solver(config, model, overrides)
    prepare_out_dir(out_dir)
    with threads(config.threads):
        test = task.evaluate(model, out_dir, progress)
    metrics = {"task": config.task, "name": config.label, "run_dir": str(run_dir), **test}
    if solver is not None:
        metrics["solver"] = solver
    write_json_atomic(out_dir / METRICS, metrics)
    return metrics


def _evaluation_solver(
    config: Config, model: nn.Module, overrides: list[str] | tuple[str, ...]
) -> dict[str, Any] | None:
    """Put the run's solver section with ``overrides`` applied on ``model``; its settings, or None without any."""
    if not overrides:
        return None
    for item in overrides:
        if not item.partition("=")[0].strip().startswith("solver."):
            raise ConfigError(f"--set {shown(item)}: eval changes only the solver (solver.KEY=VALUE)")
    try:
        section = changed_solver(config, apply_overrides({}, overrides)["solver"], "--set solver")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    preflight(config.model_copy(update={"solver": section}), training=False)  # a grid past the step limit
    model.solver = section.build()  # type: ignore[assignment]
    return section.model_dump(mode="json")


def sample_run(
    run_dir: str | os.PathLike[str], n: int, out: str | os.PathLike[str] | None = None, seed: int = 0
) -> dict[str, Any]:
    """Draw ``n`` samples from a generative run's model into ``out`` (default ``RUN_DIR/samples``)."""
    if n < 1:
        raise ConfigError(f"number of samples must be positive, got {n}")
    out_dir = check_out_dir(Path(out) if out is not None else Path(run_dir) / "samples")
    config, task, model = open_run(run_dir)
    refusal = task.sampling_refusal()
    if refusal is not None:  # before --out is created
        raise refusal
    check_free_space(out_dir, 4.0 * n * getattr(model, "dim", 1), "--out")  # samples.npy is float32 (n, dim)
    prepare_out_dir(out_dir)
    with threads(config.threads):
        return task.sample(model, n, torch.Generator().manual_seed(seed), out_dir)


__all__ = ["CHECKPOINT", "RunResult", "evaluate_run", "is_run_dir", "open_run", "sample_run", "train"]

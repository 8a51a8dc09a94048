"""One way to open any saved model: ``kn.open(path)``.

Four things on disk hold a trained model, and [`open`][kirchhoffnet.runs.open] tells them apart by what they contain:

* ``"run"``: a run directory of ``kirchhoffnet train`` (``config.yaml`` + ``model.safetensors``);
  the model is rebuilt from the checkpoint's own spec and the config cross-checked
  ([`Task.load_model`][kirchhoffnet.tasks.Task.load_model]); the task knows the test set.
* ``"diffusion-run"``: a run directory of a diffusion config (its checkpoint holds a score model),
  opened like any run, with `OpenedRun.run` for the diffusion functions.
* ``"original-checkpoint"``: a result directory of the original code (``config.yaml`` + ``model.pth``,
  [`kirchhoffnet.compat.load_original`][kirchhoffnet.compat.load_original]).
* ``"checkpoint-file"``: a bare ``.safetensors`` file written by [`kirchhoffnet.save`][kirchhoffnet.save] (or a
  directory holding only ``model.safetensors``).

Anything else is a one-line [`CheckpointError`][kirchhoffnet.errors.CheckpointError] naming what was expected.
Every command that reloads a trained model goes through here (``eval`` and ``sample`` of a run, ``hw``,
``spice``); ``eval`` of an original result scores it with
[`kirchhoffnet.tasks.evaluate_path`][kirchhoffnet.tasks.evaluate_path].
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from kirchhoffnet import checkpoint
from kirchhoffnet._textfile import read_json_mapping
from kirchhoffnet._yamlfile import read_yaml_mapping
from kirchhoffnet.checkpoint import MODEL_KINDS, RUN_MODEL, SCORE_KINDS
from kirchhoffnet.compat import is_original_result, load_original, read_config
from kirchhoffnet.config import Config, parse_config, preflight
from kirchhoffnet.data import TOY_SETS, sample_toy
from kirchhoffnet.data.seeds import draw_seed
from kirchhoffnet.diffusion.run import Run
from kirchhoffnet.errors import CheckpointError, ConfigError, KirchhoffError, TrainingError
from kirchhoffnet.io import FORMAT, read_tensors
from kirchhoffnet.models import Flow
from kirchhoffnet.models.baselines import BASELINE_FORMATS
from kirchhoffnet.tasks import Task, make_task

RUN_CONFIG = "config.yaml"
"""A run directory's resolved config (both trainers write it)."""
RUN_METRICS = "metrics.json"
"""A run directory's final metrics, when it has been evaluated."""
Kind = Literal["run", "diffusion-run", "original-checkpoint", "checkpoint-file"]
EXPECTED = (
    f"a run directory with {RUN_MODEL} (of `kirchhoffnet train`), "
    f"nor an original result directory with {RUN_CONFIG} and model.pth"
)


@dataclass(frozen=True)
class RunMetric:
    """The number a run is judged by.

    Attributes:
        name: the task's primary metric (``nll_nats``, ``accuracy``, ``mse``, a diffusion run's
            ``kl_pooled`` or ``judge_accuracy``, ...); ``None`` for a bare checkpoint of unknown purpose.
        value: its value in the directory's ``metrics.json`` (``test.<name>`` or ``<name>``), else ``None``.
        higher_is_better: how to compare two values; ``None`` with no name.
    """

    name: str | None = None
    value: float | None = None
    higher_is_better: bool | None = None


@dataclass(frozen=True)
class OpenedRun:
    """A saved model and what is known about how it was made ([`open`][kirchhoffnet.runs.open]).

    Attributes:
        path: as given.
        kind: ``"run"``, ``"diffusion-run"``, ``"original-checkpoint"`` or ``"checkpoint-file"``.
        model: the model in eval mode: a Flow, Network or Circuit (or a baseline: the MLP of a regression run,
            the ODE-Net of a classify run),
            or a diffusion run's score model.
        config: a run's validated `Config`, a diffusion run's
            ``DiffusionConfig``, an original result's parsed ``config.yaml`` (a mapping); ``None``
            for a bare checkpoint file.
        task: a run's prepared [`Task`][kirchhoffnet.tasks.Task] (its data, metrics and plots), a
            diffusion run's included; ``None`` for a checkpoint, which knows no task.
        metric: the primary metric ([`RunMetric`][kirchhoffnet.runs.RunMetric]).
        dataset: the 2-D data set of a 2-D flow, where the files name it (a flow2d run's config, an
            original config's ``test_bench``, a checkpoint's metadata ``dataset`` or ``test_bench``).
        metadata: the checkpoint's JSON metadata (empty for an original result).
        run: for a diffusion run, its [`Run`][kirchhoffnet.diffusion.run.Run] (what the diffusion
            sampling and evaluation functions take); else ``None``.
    """

    path: Path
    kind: Kind
    model: nn.Module
    config: Any = None
    task: Task | None = None
    metric: RunMetric = RunMetric()
    dataset: str | None = None
    metadata: dict[str, Any] | None = None
    run: Any = None

    def data(self, points: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor | None]:
        """The held-out test data ``(inputs, targets)`` (targets ``None`` for a flow's points).

        A run gives its task's test set (the first ``points`` rows if given); a 2-D flow whose data
        set is known gives ``points`` (default 10,000) fresh samples, the ``data`` draw of ``seed``, as
        ``kirchhoffnet eval`` draws them. Raises [`ConfigError`][kirchhoffnet.errors.ConfigError] where there is none.
        """
        if self.task is not None:
            x, y = self.task.test_data()
            if points is None:
                return x, y
            return x[:points], None if y is None else y[:points]
        if self.dataset is not None and self.dataset in TOY_SETS:
            return held_out_points(self.dataset, 10_000 if points is None else points, seed), None
        raise ConfigError(
            f"{self.path} ({self.kind}) has no held-out test data: only runs of `kirchhoffnet train` with a "
            "test set and 2-D flows whose data set is known have one"
        )


def open(path: str | os.PathLike[str], *, device: str = "cpu", prepare: bool = True) -> OpenedRun:
    """Open any saved model: a run directory of ``kirchhoffnet train`` (any task, diffusion included), a
    ``.safetensors`` checkpoint, or an original result directory (``config.yaml`` + ``model.pth``).

    Args:
        device: where a run's model and data go.
        prepare: load a run's data now (its task's [`prepare`][kirchhoffnet.tasks.Task.prepare]); pass
            ``False`` to open only the model of a run whose data is not on this machine (then
            [`OpenedRun.data`][kirchhoffnet.runs.OpenedRun.data] is unavailable).

    Raises:
        CheckpointError: not one of the four, a file that is not a readable checkpoint, a spec that
            does not match its tensors, a config.yaml that disagrees with the checkpoint's spec.
    """
    path = Path(path)
    kind = kind_of(path)
    if kind in ("run", "diffusion-run"):
        return _open_run(path, kind, device, prepare)
    if kind == "original-checkpoint":
        original = load_original(path).eval()
        config = read_config(path)
        bench = config.get("test_bench")
        return _with_dataset(OpenedRun(path, kind, original, config, metadata={}), str(bench) if bench else None)
    file = path if path.is_file() else path / RUN_MODEL
    spec, tensors, metadata = read_tensors(file)
    model = checkpoint.rebuild(spec, tensors, file).eval()
    name = next((str(metadata[k]) for k in ("dataset", "test_bench") if isinstance(metadata.get(k), str)), None)
    return _with_dataset(OpenedRun(path, kind, model, metadata=metadata), name)


def kind_of(path: str | os.PathLike[str]) -> Kind:
    """What [`open`][kirchhoffnet.runs.open] would open at ``path``, from the names of its files and a run checkpoint's
    spec kind; raises [`CheckpointError`][kirchhoffnet.errors.CheckpointError] for anything else."""
    path = Path(path)
    if path.is_file():
        return "checkpoint-file"
    if is_run_directory(path):
        found = _spec_kind(path / RUN_MODEL)
        if found in SCORE_KINDS:
            return "diffusion-run"
        if found in (*MODEL_KINDS, *BASELINE_FORMATS) or found is None:
            return "run"
        checkpoint.check_kind({"kind": found})  # an unknown kind: the error names it
    if is_original_result(path):
        return "original-checkpoint"
    if (path / RUN_MODEL).is_file():
        return "checkpoint-file"  # a directory holding only the model file
    raise CheckpointError(f"{path} is neither a checkpoint file, {EXPECTED}")


def is_run_directory(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a run's ``config.yaml`` and ``model.safetensors`` (of either trainer)."""
    return (Path(path) / RUN_CONFIG).is_file() and (Path(path) / RUN_MODEL).is_file()


def open_model(path: str | os.PathLike[str], *, device: str = "cpu", prepare: bool = True) -> OpenedRun:
    """[`open`][kirchhoffnet.runs.open] for the tools that take a circuit, flow or network (``spice``, ``hw``): a
    diffusion run is refused with the commands that read one."""
    path = Path(path)
    if kind_of(path) == "diffusion-run":
        try:
            checkpoint.check_kind(read_tensors(path / RUN_MODEL)[0])
        except CheckpointError as exc:
            raise CheckpointError(f"{path / RUN_MODEL}: {exc}") from None
    return open(path, device=device, prepare=prepare)


def load_model(path: str | os.PathLike[str]) -> nn.Module:
    """The circuit, flow or network at ``path`` ([`open_model`][kirchhoffnet.runs.open_model]), without a run's data."""
    return open_model(path, prepare=False).model


def read_run_config(run_dir: Path) -> Config:
    """The validated config of a run directory of ``kirchhoffnet train``.

    The trainer writes the whole resolved config; one with top-level sections missing (truncated, edited
    by hand) would silently rebuild, evaluate or resume the run with defaults it was not trained with.
    """
    path = run_dir / RUN_CONFIG
    if not path.is_file():
        raise TrainingError(f"{run_dir} is not a run directory: it has no {RUN_CONFIG}")
    saved = read_yaml_mapping(path, error=TrainingError, label="run config")
    config = parse_config(saved, str(path))
    missing = sorted(set(type(config).model_fields) - set(saved))
    if missing:
        raise TrainingError(
            f"{path} lacks {', '.join(missing)}: it is not the whole config the run was trained with (truncated "
            "or edited?), and defaults would stand in for what was trained"
        )
    return config


def held_out_points(name: str, points: int, seed: int) -> Tensor:
    """``points`` fresh samples of the 2-D data set ``name``, the ``data`` draw of ``seed`` as ``kirchhoffnet
    eval`` draws them."""
    return torch.from_numpy(sample_toy(name, points, seed=draw_seed(seed, "data")))


def _open_run(path: Path, kind: Kind, device: str, prepare: bool) -> OpenedRun:
    config = read_run_config(path)
    preflight(config, training=False)
    task = make_task(config, device, getattr(torch, config.dtype), run_dir=path)
    if prepare:
        task.prepare()
    model = task.load_model(path / RUN_MODEL).to(device).eval()
    value = _metric_value(path, task.primary)
    metric = RunMetric(task.primary, value, task.higher_is_better)
    name = getattr(getattr(config, "data", None), "name", None)
    dataset = name if config.task == "flow2d" and isinstance(name, str) else None
    run = Run(path, config, model) if kind == "diffusion-run" else None  # type: ignore[arg-type]
    return OpenedRun(path, kind, model, config, task, metric, dataset, _metadata(path), run)


def _with_dataset(opened: OpenedRun, name: str | None) -> OpenedRun:
    """``opened`` with its 2-D data set, and for a 2-D flow the held-out NLL as its metric."""
    if name is None:
        return opened
    metric = opened.metric
    if isinstance(opened.model, Flow) and opened.model.dim == 2:
        directory = opened.path if opened.path.is_dir() else opened.path.parent
        metric = RunMetric("nll_nats", _metric_value(directory, "nll_nats"), False)
    return replace(opened, dataset=name, metric=metric)


def _spec_kind(file: Path) -> Any:
    """The spec ``kind`` of a run's model file; a baseline's file (another format) gives its format."""
    try:
        return read_tensors(file)[0].get("kind")
    except CheckpointError:
        for fmt in BASELINE_FORMATS:
            try:
                read_tensors(file, fmt)
            except CheckpointError:
                continue
            return fmt
        raise


def _metadata(run_dir: Path) -> dict[str, Any]:
    file = run_dir / RUN_MODEL
    kind = _spec_kind(file)
    return read_tensors(file, kind if kind in BASELINE_FORMATS else FORMAT)[2]


def _metric_value(directory: Path, name: str) -> float | None:
    """``test.<name>`` or ``<name>`` of ``directory/metrics.json`` if it is there and a number."""
    path = directory / RUN_METRICS
    if not path.is_file():
        return None
    try:
        metrics = read_json_mapping(path, error=CheckpointError, label="metrics file")
    except KirchhoffError:
        return None
    test = metrics.get("test")
    value = test.get(name) if isinstance(test, dict) else metrics.get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


__all__ = [
    "OpenedRun",
    "RunMetric",
    "held_out_points",
    "is_run_directory",
    "kind_of",
    "load_model",
    "open",
    "open_model",
]

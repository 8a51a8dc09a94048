"""``kirchhoffnet hw`` from Python: the hardware studies of models given by path.

The studies themselves ([`kirchhoffnet.hardware.study`][kirchhoffnet.hardware.study]) take any model and
[`Metric`][kirchhoffnet.hardware.Metric]. Which metric and which inputs fit a *saved* model depends on
how it was made: a run directory of ``kirchhoffnet train`` knows its task and test set; a bare
checkpoint or an original result knows at most its 2-D data set; a run of ``kirchhoffnet diffusion
train`` is reported per generation. Telling them apart needs the task, diffusion and training code,
so it lives here, above all three, and the command line only parses options and prints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.data import TOY_SETS
from kirchhoffnet.data.seeds import draw_seed
from kirchhoffnet.errors import ConfigError, KirchhoffError, clip, shown
from kirchhoffnet.hardware import Metric, Noise, PhysicalDesign, accuracy, flow_nll, mse
from kirchhoffnet.hardware.study import Study, montecarlo_study, noise_study, quantization_study, report_study
from kirchhoffnet.hardware.variation import MonteCarloResult
from kirchhoffnet.models import Flow
from kirchhoffnet.runs import OpenedRun, held_out_points, kind_of, open_model
from kirchhoffnet.runs import open as open_saved_run
from kirchhoffnet.runtime import require_memory
from kirchhoffnet.tasks import Task
from kirchhoffnet.training._state import seed_everything

GENERATION_SUMMARY = ("latency_s", "energy_j", "peak_node_voltage_v", "within_supply")
"""The headline numbers of a score-circuit run's per-generation report."""


def open_saved(path: str | os.PathLike[str]) -> OpenedRun:
    """The model at ``path`` ([`kirchhoffnet.runs.open_model`][kirchhoffnet.runs.open_model]: a diffusion run is
    refused), a run's global RNGs seeded as [`open_run`][kirchhoffnet.training.open_run] seeds them."""
    opened = open_model(path)
    if opened.kind == "run":
        seed_everything(opened.config.seed)
    return opened


def flow_dataset(path: str | os.PathLike[str] | OpenedRun, override: str | None = None) -> str | None:
    """The 2-D data set of a flow, so a checkpoint can be scored without its run: ``override``
    (``--dataset``), else what [`kirchhoffnet.open`][kirchhoffnet.open] found
    ([`OpenedRun.dataset`][kirchhoffnet.runs.OpenedRun]: the original config's test_bench, the checkpoint's metadata
    ``dataset`` or ``test_bench``, a flow2d run's ``data.name``); ``None`` where none is named or ``path`` opens
    nothing."""
    if override is not None:
        return override
    if isinstance(path, OpenedRun):
        return path.dataset
    try:
        return open_model(path, prepare=False).dataset
    except KirchhoffError:
        return None


def task_metric(task: Task, points: int) -> Metric:
    """A run's own test metric on the first ``points`` examples of its test set, so a study scores the
    model as its run did: accuracy of a classifier, held-out NLL of a 2-D flow, MSE of a regression."""
    x, y = task.test_data()
    x, batch = x[:points], task.eval_batch
    if task.primary == "nll_nats":
        return flow_nll(x, batch)
    if task.primary == "accuracy" and y is not None:
        return accuracy(x, y[:points], batch)
    if task.primary == "mse" and y is not None:
        return mse(x, y[:points].reshape(len(x), -1), batch)
    raise ConfigError(
        f"the hw commands measure accuracy, held-out NLL or MSE; a {task.run_config.task} run reports "
        f"{task.primary} (use kirchhoffnet.hardware with your own Metric from Python)"
    )


def study_metric(saved: OpenedRun, points: int, *, dataset: str | None = None, seed: int = 0) -> Metric:
    """The metric a study scores ``saved`` on: its run's test metric
    ([`task_metric`][kirchhoffnet.training.hw.task_metric]), or for a checkpoint or original result the held-out NLL of
    a 2-D flow whose data set is known; outside those, no metric is right and the error says so."""
    if saved.task is not None:
        return task_metric(saved.task, points)
    name = flow_dataset(saved, dataset)
    if not isinstance(saved.model, Flow) or saved.model.dim != 2 or name is None:
        raise ConfigError(
            f"cannot tell which metric to use for {saved.path}: outside run directories of `kirchhoffnet train` "
            "(whose test set is known), the hw commands measure the held-out NLL of 2-D flows whose data set is "
            "known (original config test_bench, checkpoint metadata 'dataset', or --dataset)"
        )
    if name not in TOY_SETS:
        raise ConfigError(f"--dataset {shown(name)} is not a 2-D data set; choose one of: {', '.join(TOY_SETS)}")
    return flow_nll(held_out_points(name, points, seed))


def read_inputs(path: str | os.PathLike[str], samples: int) -> Tensor:
    """The first ``samples`` rows of a ``.npy`` (N, d) float array (``--inputs``)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # EOFError: a truncated .npy
        raise ConfigError(f"--inputs {path} is not a readable .npy array: {clip(str(exc), 200)}") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise ConfigError(f"--inputs {path} must hold a (N, d) float array, got {array.dtype} {array.shape}")
    return torch.from_numpy(array[:samples].copy())


def study_inputs(
    saved: OpenedRun, samples: int, *, inputs: str | os.PathLike[str] | None = None, seed: int = 0
) -> Tensor:
    """What the circuit is run on: the ``inputs`` file, a run's test inputs (classifier, regression),
    or a flow's standard normal base samples (a flow's inference is sampling)."""
    if inputs is not None:
        return read_inputs(inputs, samples)
    if saved.task is not None and not isinstance(saved.model, Flow):
        return saved.task.test_data()[0][:samples]
    if isinstance(saved.model, Flow):
        # drawn, then encoded as the circuit's initial state: two float64 copies before any solve
        require_memory(16.0 * samples * saved.model.dim, "samples", "flow's base-sample draw", "(float64, twice)")
        generator = torch.Generator().manual_seed(draw_seed(seed, "base"))
        return torch.randn(samples, saved.model.dim, generator=generator, dtype=torch.float64)
    raise ConfigError(
        f"a {type(saved.model).__name__} has no default inputs; pass --inputs FILE.npy with (N, d) inputs"
    )


def open_with_metrics(
    paths: Sequence[str | os.PathLike[str]], points: int, *, dataset: str | None = None, seed: int = 0
) -> list[tuple[str, Any, Metric]]:
    """``(label, model, metric)`` for each path, all opened before any study starts (a bad last path
    fails at once); labels are the file stems or directory names, made unique with ``-2``, ``-3``."""
    found: list[tuple[str, Any, Metric]] = []
    taken: set[str] = set()
    for path in map(Path, paths):
        saved = open_saved(path)
        metric = study_metric(saved, points, dataset=dataset, seed=seed)
        found.append((_label(path, taken), saved.model, metric))
    return found


def _label(path: Path, taken: set[str]) -> str:
    name = path.stem if path.is_file() else path.resolve().name
    label, k = name, 2
    while label in taken:
        label, k = f"{name}-{k}", k + 1
    taken.add(label)
    return label


def hw_report(
    path: str | os.PathLike[str],
    design: PhysicalDesign,
    out: str | os.PathLike[str],
    *,
    samples: int = 256,
    inputs: str | os.PathLike[str] | None = None,
    settling: float = 5.0,
    fit_voltage: bool = False,
    points_per_slice: int = 201,
    seed: int = 0,
    progress: bool = False,
) -> Study[dict[str, Any]]:
    """``kirchhoffnet hw report``: [`report_study`][kirchhoffnet.hardware.study.report_study] of the model at
    ``path`` on [`study_inputs`][kirchhoffnet.training.hw.study_inputs]; a score-circuit diffusion run is
    reported per generation instead (its probability-flow transient over ``samples`` generations).
    ``progress``: a bar over the slices (a generation's steps for a score circuit), or periodic lines off a
    terminal (`kirchhoffnet._progress`)."""
    path = Path(path)
    if kind_of(path) == "diffusion-run":
        return _generation_report(path, design, Path(out), samples, settling, fit_voltage, progress)
    saved = open_saved(path)
    x = study_inputs(saved, samples, inputs=inputs, seed=seed)
    model: Any = saved.model  # a Circuit, Flow or Network; the study refuses anything else
    return report_study(
        model, x, design, out, name=path.name, source=str(path.resolve()),
        settling=settling, fit_voltage=fit_voltage, points_per_slice=points_per_slice, progress=progress,
    )  # fmt: skip


def _generation_report(
    path: Path, design: PhysicalDesign, out: Path, samples: int, settling: float, fit: bool, progress: bool
) -> Study[dict[str, Any]]:
    from kirchhoffnet.diffusion.circuit_run import hardware_markdown, run_hardware
    from kirchhoffnet.hardware.report import write_study

    result = run_hardware(open_saved_run(path).run, samples, design, settling, fit_supply=fit, progress=progress)
    data = {"source": str(path.resolve()), **result}
    files = write_study(out, "hw_report", data, hardware_markdown(result, f"Hardware report: {path.name}"))
    return Study(data, files, {k: data[k] for k in GENERATION_SUMMARY})


def hw_montecarlo(
    paths: Sequence[str | os.PathLike[str]],
    sigmas: Sequence[float],
    out: str | os.PathLike[str],
    *,
    kind: str = "edge",
    trials: int = 100,
    threshold: float | None = None,
    points: int = 1000,
    dataset: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Study[dict[str, list[MonteCarloResult]]]:
    """``kirchhoffnet hw montecarlo``: the metric over random dies at each σ, one curve per path
    ([`open_with_metrics`][kirchhoffnet.training.hw.open_with_metrics], then
    [`montecarlo_study`][kirchhoffnet.hardware.study.montecarlo_study])."""
    models = open_with_metrics(paths, points, dataset=dataset, seed=seed)
    return montecarlo_study(
        models, sigmas, out, kind=kind, trials=trials, threshold=threshold, seed=seed, progress=progress
    )


def hw_quantize(
    paths: Sequence[str | os.PathLike[str]],
    bits: Sequence[int],
    schemes: Sequence[str],
    out: str | os.PathLike[str],
    *,
    points: int = 1000,
    dataset: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Study[dict[str, list[dict[str, Any]]]]:
    """``kirchhoffnet hw quantize``: the metric against bits per device parameter, one curve per path
    and scheme ([`open_with_metrics`][kirchhoffnet.training.hw.open_with_metrics], then
    [`quantization_study`][kirchhoffnet.hardware.study.quantization_study])."""
    models = open_with_metrics(paths, points, dataset=dataset, seed=seed)
    return quantization_study(models, bits, schemes, out, progress)


def hw_noise(
    path: str | os.PathLike[str],
    capacitances: Sequence[float],
    base: PhysicalDesign,
    noise: Noise,
    out: str | os.PathLike[str],
    *,
    samples: int = 1000,
    inputs: str | os.PathLike[str] | None = None,
    points: int = 1000,
    dataset: str | None = None,
    dt: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> Study[list[dict[str, Any]]]:
    """``kirchhoffnet hw noise``: [`noise_study`][kirchhoffnet.hardware.study.noise_study] of the model at ``path``
    on [`study_inputs`][kirchhoffnet.training.hw.study_inputs]; a flow whose 2-D data set is known
    ([`flow_dataset`][kirchhoffnet.training.hw.flow_dataset]) is also scored by the energy distance of its noisy samples
    to ``points`` held-out ones."""
    path = Path(path)
    saved = open_saved(path)
    x = study_inputs(saved, samples, inputs=inputs, seed=seed)
    name = flow_dataset(saved, dataset)
    reference = held_out_points(name, points, seed) if name is not None and name in TOY_SETS else None
    model: Any = saved.model  # a Circuit, Flow or Network; the study refuses anything else
    return noise_study(
        model, x, capacitances, base, noise, out, name=path.name, source=str(path.resolve()),
        reference=reference, dt=dt, seed=seed, progress=progress,
    )  # fmt: skip

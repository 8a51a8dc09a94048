"""Tasks: what a model is for, how it is trained against data, evaluated and plotted."""

from __future__ import annotations

from pathlib import Path

import torch

from kirchhoffnet.config import Config
from kirchhoffnet.data.supplied import Pair
from kirchhoffnet.tasks.base import Task
from kirchhoffnet.tasks.classify import ClassifyTask
from kirchhoffnet.tasks.density import DensityTask
from kirchhoffnet.tasks.diffusion import DiffusionTask
from kirchhoffnet.tasks.evaluate import evaluate_flow_2d, evaluate_path, flow_2d_metrics
from kirchhoffnet.tasks.flow2d import Flow2dTask
from kirchhoffnet.tasks.generate import MnistGenTask
from kirchhoffnet.tasks.regression import RegressionTask

TASK_TYPES: dict[str, type[Task]] = {
    "flow2d": Flow2dTask,
    "regression": RegressionTask,
    "classify": ClassifyTask,
    "density": DensityTask,
    "mnist_gen": MnistGenTask,
    "diffusion": DiffusionTask,
}


def make_task(
    config: Config,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    run_dir: Path | None = None,
    progress: bool = False,
    supplied: dict[str, Pair] | None = None,
) -> Task:
    """The task object of a validated config; ``run_dir`` is where a task keeps what it prepares
    once per run (the latent diffusion task's VAE and judge), ``supplied`` the arrays of a memory
    data source (`kirchhoffnet.data.supplied.as_parts`)."""
    kind = TASK_TYPES[config.task].variant(config)
    return kind(config, torch.device(device), dtype, run_dir, progress, supplied)


__all__ = ["TASK_TYPES", "Task", "evaluate_flow_2d", "evaluate_path", "flow_2d_metrics", "make_task"]

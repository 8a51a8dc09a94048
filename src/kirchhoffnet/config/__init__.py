"""Validated YAML configs of training runs (pydantic, unknown keys are errors).

``load_config("configs/flow2d/twomoon.yaml", ["train.lr=3e-3"])`` returns the task's config
object; any problem raises [`ConfigError`][kirchhoffnet.errors.ConfigError] with one line naming the key.
"""

from kirchhoffnet.config.budget import check_memory, preflight
from kirchhoffnet.config.circuit import CircuitConfig, SolverConfig
from kirchhoffnet.config.diffusion import DiffusionConfig
from kirchhoffnet.config.load import (
    TASKS,
    Config,
    apply_overrides,
    as_config,
    load_config,
    parse_config,
    to_yaml,
    write_config,
)
from kirchhoffnet.config.tasks import (
    ClassifyConfig,
    DensityConfig,
    Flow2dConfig,
    MnistGenConfig,
    RegressionConfig,
    RunConfig,
    TrainConfig,
    changed_solver,
    reference_solver,
)

__all__ = [
    "TASKS",
    "CircuitConfig",
    "ClassifyConfig",
    "Config",
    "DensityConfig",
    "DiffusionConfig",
    "Flow2dConfig",
    "MnistGenConfig",
    "RegressionConfig",
    "RunConfig",
    "SolverConfig",
    "TrainConfig",
    "apply_overrides",
    "as_config",
    "changed_solver",
    "check_memory",
    "load_config",
    "parse_config",
    "preflight",
    "reference_solver",
    "to_yaml",
    "write_config",
]

"""Finding the model behind a path: a checkpoint file, one of our run directories, or an original result."""

from __future__ import annotations

import os
from pathlib import Path

from kirchhoffnet.compat import is_original_result, load_original
from kirchhoffnet.errors import CheckpointError
from kirchhoffnet.io.checkpoint import Model, load

RUN_MODEL = "model.safetensors"
"""The file name of the trained model inside a run directory."""


def load_model(path: str | os.PathLike[str]) -> Model:
    """Load ``path``: a ``.safetensors`` checkpoint, a run directory holding ``model.safetensors``,
    or a result directory of the original code (``config.yaml`` + ``model.pth``)."""
    path = Path(path)
    if path.is_file():
        return load(path)
    if (path / RUN_MODEL).is_file():
        return load(path / RUN_MODEL)
    if is_original_result(path):
        return load_original(path)
    raise CheckpointError(
        f"{path} is neither a checkpoint file, a run directory with {RUN_MODEL}, "
        "nor an original result directory with config.yaml and model.pth"
    )

"""Reading a YAML file that must hold a mapping (configs, original result directories), with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from kirchhoffnet.errors import ConfigError, KirchhoffError


def read_yaml_mapping(
    path: str | os.PathLike[str],
    *,
    error: type[KirchhoffError] = ConfigError,
    label: str = "config file",
    hint: str = "",
    empty: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The mapping in the YAML file ``path``, or ``error`` saying why there is none.

    Args:
        error: the error class raised (a config problem, or a checkpoint problem for result directories).
        label: what the file is, leading the not-found message (``"config file x.yaml not found"``).
        hint: appended to the not-found message, e.g. what the directory should hold.
        empty: returned (copied) for an empty file; ``None`` makes an empty file an error.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{label} {path} not found{hint}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None and empty is not None:
        return dict(empty)
    if not isinstance(data, dict):
        raise error(f"{path} must hold a mapping of settings, got {type(data).__name__}")
    return data

"""Reading a YAML file that must hold a mapping (configs, original result directories), with one-line errors,
and the CLI's ``--set key.sub=value`` overrides of such a mapping."""

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


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``data`` with ``key.sub=value`` overrides; values are parsed as YAML (``1e-3``, ``[1, 2]``)."""
    result = yaml.safe_load(yaml.safe_dump(data))  # deep copy of plain data
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr=1e-3")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
        parts = key.strip().split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[: depth + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return result

"""Reading configs: YAML with ``--set key=value`` overrides, and one-line validation errors."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import BaseModel, ValidationError

from kirchhoffnet._yamlfile import apply_overrides, read_yaml_mapping
from kirchhoffnet.config import tasks
from kirchhoffnet.config.circuit import TOPOLOGY_NAMES
from kirchhoffnet.config.diffusion import SCORE_KINDS, DiffusionConfig
from kirchhoffnet.config.tasks import RunConfig
from kirchhoffnet.errors import ConfigError, clip, shown
from kirchhoffnet.io import write_text_atomic

TASKS: dict[str, type[RunConfig]] = {
    "flow2d": tasks.Flow2dConfig,
    "regression": tasks.RegressionConfig,
    "classify": tasks.ClassifyConfig,
    "density": tasks.DensityConfig,
    "mnist_gen": tasks.MnistGenConfig,
    "diffusion": DiffusionConfig,
}
"""Every task's config class, by the ``task:`` key of a YAML file."""
Config = (
    tasks.Flow2dConfig
    | tasks.RegressionConfig
    | tasks.ClassifyConfig
    | tasks.DensityConfig
    | tasks.MnistGenConfig
    | DiffusionConfig
)


def parse_config(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a config mapping; any problem becomes one line naming the key."""
    task = data.get("task")
    if not isinstance(task, str) or task not in TASKS:
        raise ConfigError(f"task: must be one of {', '.join(TASKS)}, got {shown(task)} (in {source})")
    try:
        return cast(Config, TASKS[task].model_validate(data))
    except ValidationError as exc:
        raise ConfigError(f"{describe_error(exc, TASKS[task])} (in {source})") from None


def load_config(path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = (), **replace: Any) -> Config:
    """Read, override and validate a YAML config.

    Args:
        path: the YAML file.
        overrides: ``key.sub=value`` strings (the CLI's ``--set``).
        replace: top-level keys to set (``seed=3``, ``device="cuda"``); ``None`` values are ignored.
    """
    data = apply_overrides(read_config_mapping(path), overrides)
    data.update({k: v for k, v in replace.items() if v is not None})
    return parse_config(data, str(path))


def read_config_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The YAML mapping of a config file, the data it names made absolute against the file's directory (a data
    file of ``data.source: file``, an image folder ``data.root`` or ``latent.data_dir``): a config and its data
    travel together, wherever the command runs. ``--set`` values are applied after, relative to the working
    directory as every command-line path."""
    data = read_yaml_mapping(path)
    folder = Path(path).parent.absolute()

    def anchor(section: Any, key: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            file = Path(section[key]).expanduser()
            section[key] = str(file) if file.is_absolute() else os.path.normpath(folder / file)

    section = data.get("data")
    if isinstance(section, dict) and section.get("source") == "file":
        anchor(section, "path")
    anchor(section, "root")
    anchor(data.get("latent"), "data_dir")
    return data


def as_config(config: Config | dict[str, Any] | str | os.PathLike[str]) -> Config:
    """A validated config from a config object, a mapping or a YAML path."""
    if isinstance(config, RunConfig):
        return cast(Config, config)
    if isinstance(config, dict):
        return parse_config(config)
    return load_config(config)


def to_yaml(config: BaseModel) -> str:
    """The resolved config (every default filled in) as YAML, loadable by
    [`load_config`][kirchhoffnet.config.load_config]."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def write_config(config: BaseModel, path: str | os.PathLike[str]) -> Path:
    return write_text_atomic(path, to_yaml(config))


def describe_error(exc: ValidationError, model: type[BaseModel]) -> str:
    """``key.path: what is wrong, got X`` for the first error, plus how many more there are."""
    # An unknown key is usually a misspelt one, behind any "missing" error: report it first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    parts = [p for p in first["loc"] if p not in TOPOLOGY_NAMES and p not in SCORE_KINDS]  # union tags
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    message = _message(first, model, parts)
    named = _NAMED.match(message) if first["type"] == "value_error" else None
    if named:  # a cross-field check names the key it is about, relative to where it runs
        key = f"{key}.{named[1]}" if key else named[1]
        message = named[2]
    more = f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})" if len(errors) > 1 else ""
    # Keys and messages can quote input of any length (a misspelt key of a megabyte): bound both.
    return f"{clip(key or 'config', 120)}: {clip(message, 240)}{more}"


_NAMED = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.*)$", re.DOTALL)
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _message(error: Any, model: type[BaseModel], loc: list[Any]) -> str:
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {bound}, got {shown(got)}"
    if kind == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        hint = f"; valid keys here: {', '.join(valid)}" if valid else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required setting is missing"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {shown(got)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        if ctx.get("discriminator") == "'kind'":
            return f"unknown or missing model kind; choose one of: {', '.join(SCORE_KINDS)}"
        return f"unknown or missing topology name; choose one of: {', '.join(TOPOLOGY_NAMES)}"
    if kind == "value_error":
        return clip(str(ctx.get("error", error["msg"])), 240)
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {shown(got)}"


def _fields_at(model: type[BaseModel], loc: list[Any]) -> list[str]:
    """Field names of the section at ``loc`` (best effort: empty when it cannot be followed)."""
    node: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(node, type) and issubclass(node, BaseModel)):
            continue
        field = node.model_fields.get(part)
        if field is None:
            return []
        node = _section_type(field.annotation)
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def _section_type(annotation: Any) -> Any:
    """The BaseModel inside ``X | None`` or ``list[X]``, else the annotation itself."""
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation

"""Reading a YAML file that must hold a mapping (configs, run and original result directories), with
one-line errors, and the CLI's ``--set key.sub=value`` overrides of such a mapping.

Every YAML document kirchhoffnet reads goes through `load_yaml`: a 1 KB file of nested aliases
(a "billion laughs") expands to 10^9 nodes that validation and error messages would walk, deep
nesting exhausts the recursive composer, and a huge integer literal or an impossible date fails
inside the constructor. The loader bounds the expanded size and the depth before anything is built.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from kirchhoffnet._textfile import read_text
from kirchhoffnet.errors import ConfigError, KirchhoffError, clip, shown

# Bounds of a document once its aliases are expanded; real configs have a few hundred nodes.
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64


class YamlLimitError(yaml.YAMLError):
    """A document beyond `MAX_YAML_NODES` or `MAX_YAML_DEPTH`, or one that contains itself."""


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader with the composer's (recursive) depth bounded, before Python's stack is."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str) -> Any:
    """The data of one YAML document, with aliases, depth and size bounded.

    Raises:
        yaml.YAMLError: the text is not YAML, or is beyond the bounds (`YamlLimitError`).
        ValueError: a scalar the constructor cannot build (a 5000-digit integer, the date 2020-13-40).
    """
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expanded(root: yaml.Node) -> None:
    """Raise `YamlLimitError` if ``root`` with every alias expanded is too large, too deep or
    recursive (``&a [*a]``); linear in the distinct nodes, whatever they expand to."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, depth)
    open_nodes: set[int] = set()  # expanded, children not yet finished: the ancestors on the path
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            count = 1 + sum(sizes[id(c)][0] for c in children)
            depth = 1 + max((sizes[id(c)][1] for c in children), default=0)
            if count > MAX_YAML_NODES:
                raise YamlLimitError(f"its aliases expand to more than {MAX_YAML_NODES} values; write the values out")
            if depth > MAX_YAML_DEPTH:
                raise YamlLimitError(f"its aliases nest deeper than {MAX_YAML_DEPTH} levels; write the values out")
            sizes[key] = (count, depth)
        elif key in open_nodes:
            raise YamlLimitError("an alias refers to a node that contains it; a config cannot contain itself")
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def describe_yaml_error(exc: Exception) -> str:
    """One bounded line saying what is wrong and where: PyYAML's messages span several lines and
    quote the offending text (a tag, a token) at any length."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{where}: {clip(str(exc.problem or exc.context or 'syntax error'), 120)}"
    if isinstance(exc, yaml.reader.ReaderError):
        return f" at character {exc.position}: unacceptable character #x{exc.character:04x}"
    text = str(exc).strip()
    return f": {clip(text.splitlines()[0] if text else type(exc).__name__, 120)}"


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
    text = read_text(path, error=error, label=label, hint=hint)
    try:
        data = load_yaml(text)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        raise error(f"{path} is not valid YAML{describe_yaml_error(exc)}") from None
    if data is None and empty is not None:
        return dict(empty)
    if not isinstance(data, dict):
        raise error(f"{path} must hold a mapping of settings, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``data`` with ``key.sub=value`` overrides; values are parsed as YAML (``1e-3``, ``[1, 2]``)."""
    result = copy.deepcopy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {shown(item)}: expected key=value, e.g. train.lr=1e-3")
        try:
            value = load_yaml(text)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise ConfigError(f"--set {shown(item)}: the value is not valid YAML{describe_yaml_error(exc)}") from None
        parts = key.strip().split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {shown(item)}: {clip('.'.join(parts[: depth + 1]))} is not a section")
            node = child
        node[parts[-1]] = value
    return result

"""Structural checks of documents read from disk (checkpoint specs, training state).

JSON headers and ``torch.load`` containers arrive as nested dicts and lists of any shape; these
checks turn a wrong type, a missing key or an impossible counter into one readable error that
names where it was found, before the value is used (instead of an ``AttributeError`` or
``KeyError`` deep inside a constructor). Bool is never taken for a number.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from typing import Any

from kirchhoffnet.errors import CheckpointError, KirchhoffError, shown

_NAMES = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number", type(None): "null"}


def expect(
    value: Any, kinds: type | tuple[type, ...], where: str, error: type[KirchhoffError] = CheckpointError
) -> Any:
    """``value`` if it is an instance of ``kinds`` (an int counts as a float, a bool as neither)."""
    allowed = kinds if isinstance(kinds, tuple) else (kinds,)
    numeric = float in allowed and isinstance(value, int)
    if (isinstance(value, bool) and bool not in allowed) or not (isinstance(value, allowed) or numeric):
        wanted = " or ".join(_NAMES.get(k, k.__name__) for k in allowed)
        raise error(f"{where} must be {wanted}, got {type(value).__name__} {shown(value)}")
    return value


def entry(
    mapping: Any, key: str, kinds: type | tuple[type, ...], where: str, error: type[KirchhoffError] = CheckpointError
) -> Any:
    """``mapping[key]`` checked by `expect`; a missing key or a non-mapping is an error too."""
    expect(mapping, dict, where, error)
    if key not in mapping:
        raise error(f"{where} lacks {key!r}")
    return expect(mapping[key], kinds, f"{where}.{key}", error)


def count(value: Any, where: str, error: type[KirchhoffError] = CheckpointError, low: int = 0) -> int:
    """An integer ``>= low`` (a counter, an index)."""
    expect(value, int, where, error)
    if value < low:
        raise error(f"{where} must be at least {low}, got {value}")
    return int(value)


def number(value: Any, where: str, error: type[KirchhoffError] = CheckpointError, finite: bool = True) -> float:
    """A real number (int or float), finite unless ``finite=False``."""
    expect(value, float, where, error)
    if finite and not math.isfinite(value):
        raise error(f"{where} must be finite, got {value}")
    return float(value)


def check_arguments(
    arguments: Any, constructor: type, where: str, limit: int, error: type[KirchhoffError] = CheckpointError
) -> dict[str, Any]:
    """Keyword ``arguments`` read from a file for ``constructor``: a mapping of known names, each value of a
    type its annotation allows (JSON scalars and lists of them), floats finite, and integers no larger
    than ``limit`` (the file's tensor elements: a size beyond them could not have produced the file, and
    would allocate before the shapes are compared)."""
    expect(arguments, dict, where, error)
    parameters = inspect.signature(constructor, eval_str=True).parameters
    known = {name: p.annotation for name, p in parameters.items() if _representable(p.annotation)}
    for name, value in arguments.items():
        if name not in known:
            raise error(f"{where} has unknown setting {shown(name)}; known: {', '.join(known)}")
        _check_value(value, known[name], f"{where}.{name}", limit, error)
    return arguments


_JSON_SCALARS = (bool, int, float, str, type(None))


def _options(annotation: Any) -> tuple[Any, ...]:
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return typing.get_args(annotation) if union else (annotation,)


def _representable(annotation: Any) -> bool:
    return any(o in _JSON_SCALARS or typing.get_origin(o) is list for o in _options(annotation))


def _check_value(value: Any, annotation: Any, where: str, limit: int, error: type[KirchhoffError]) -> None:
    options = _options(annotation)
    for option in options:
        if typing.get_origin(option) is list and isinstance(value, list):
            item = (typing.get_args(option) or (Any,))[0]
            for k, entry_value in enumerate(value):
                _check_value(entry_value, item, f"{where}[{k}]", limit, error)
            return
    scalars = tuple(o for o in options if o in _JSON_SCALARS) or (list,)
    expect(value, scalars, where, error)
    if isinstance(value, float) and not math.isfinite(value):
        raise error(f"{where} is {value}; settings are finite")
    if isinstance(value, int) and not isinstance(value, bool) and value > limit:
        raise error(f"{where} is {value}, more than the file's {limit} tensor values can hold")

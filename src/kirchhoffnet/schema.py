"""Structural checks of documents read from disk (checkpoint specs, training state).

JSON headers and ``torch.load`` containers arrive as nested dicts and lists of any shape; these
checks turn a wrong type, a missing key or an impossible counter into one readable error that
names where it was found, before the value is used (instead of an ``AttributeError`` or
``KeyError`` deep inside a constructor). Bool is never taken for a number.
"""

from __future__ import annotations

import math
from typing import Any

from kirchhoffnet.errors import CheckpointError, KirchhoffError

_NAMES = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number", type(None): "null"}


def shown(value: Any, limit: int = 60) -> str:
    """A short, bounded rendering of an untrusted value for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    """``mapping[key]`` checked by :func:`expect`; a missing key or a non-mapping is an error too."""
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

"""Reading the text documents kirchhoffnet is handed or wrote itself (YAML configs, JSON results):
bounded in size, strict UTF-8, every failure one line naming the file.

A config or a run directory can come from anyone: a file of gigabytes, a binary file renamed to
``.yaml``, or a ``metrics.json`` cut short by a full disk must end in an error the CLI prints as
one line, never in a traceback or a read that exhausts memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kirchhoffnet.errors import ConfigError, KirchhoffError, clip, shown

# The largest documents read: configs are a few KB; result files carry per-epoch curves, a few hundred KB.
MAX_DOCUMENT_BYTES = 1 << 20
MAX_RESULT_BYTES = 64 << 20
REWRITE = "was it cut short or edited by hand? rerun the command that writes it"


def read_text(
    path: str | os.PathLike[str],
    *,
    error: type[KirchhoffError] = ConfigError,
    label: str = "file",
    hint: str = "",
    limit: int = MAX_DOCUMENT_BYTES,
    fix: str = "",
) -> str:
    """The UTF-8 text of ``path`` (a leading byte-order mark dropped), or ``error`` saying why not.

    Args:
        error: the error class raised.
        label: what the file is, leading the not-found message (``"config file x.yaml not found"``).
        hint: appended to the not-found message, e.g. what the directory should hold.
        limit: the largest size in bytes accepted.
        fix: how to get a readable file, ending the message of one that is not UTF-8 text
            (default: save it as UTF-8).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{label} {path} not found{hint}")
    try:
        with path.open("rb") as stream:
            blob = stream.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {label} {path}: {exc.strerror or exc}") from None
    if len(blob) > limit:
        raise error(f"{path} is larger than {limit // 1024} KiB; a {label} is never that large (is it the right file?)")
    try:
        return blob.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fix = fix or f"save the {label} as UTF-8"
        raise error(f"{path} is not UTF-8 text (byte {exc.start} is 0x{blob[exc.start]:02x}); {fix}") from None


def read_json_mapping(
    path: str | os.PathLike[str],
    *,
    error: type[KirchhoffError] = ConfigError,
    label: str = "JSON file",
    hint: str = "",
    types: Mapping[str, type | tuple[type, ...]] | None = None,
    rewrite: str = REWRITE,
) -> dict[str, Any]:
    """The JSON object in ``path`` with each key of ``types`` present and of that type, or ``error``.

    kirchhoffnet writes these files itself; a truncated or hand-edited one must say which file is
    broken rather than fail wherever the missing key is first used. ``rewrite`` ends each message:
    how to get a good file back.
    """
    path = Path(path)
    text = read_text(path, error=error, label=label, hint=hint, limit=MAX_RESULT_BYTES, fix=rewrite)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); {rewrite}") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, nesting past the stack
        raise error(f"{path} is not valid JSON ({clip(str(exc) or type(exc).__name__)}); {rewrite}") from None
    if not isinstance(data, dict):
        raise error(f"{path} must hold a JSON object, got {type(data).__name__}; {rewrite}")
    require_types(data, types or {}, path, error, rewrite)
    return data


def require_types(
    data: dict[str, Any],
    types: Mapping[str, type | tuple[type, ...]],
    where: str | os.PathLike[str],
    error: type[KirchhoffError],
    rewrite: str = REWRITE,
) -> None:
    """Raise ``error`` unless each key of ``types`` is in ``data`` with a value of that type (a
    ``bool`` is not taken for a number unless ``bool`` is listed)."""
    for key, kind in types.items():
        if key not in data:
            raise error(f"{where} lacks the key {shown(key)}; {rewrite}")
        value = data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            raise error(f"{where}: {shown(key)} must be {_names(kind)}, got {type(value).__name__}; {rewrite}")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    names = {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "dict": "an object",
        "list": "a list",
        "NoneType": "null",
        "bool": "true or false",
    }
    return " or ".join(dict.fromkeys(names.get(k.__name__, k.__name__) for k in _as_tuple(kind)))

"""Atomic file writes: a reader sees the old file or the new one, never a torn one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    ``os.replace`` is atomic on POSIX and Windows within one file system, so a crash at any
    moment leaves either the previous file or the complete new one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def remove_orphans(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in ``folder``; returns them.

    Only safe while no other process writes there (a training run holds its directory's lock).
    """
    orphans = sorted(Path(folder).glob(f".*{TMP_SUFFIX}"))
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    return orphans


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(text)

    return atomic_write(path, write)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """JSON with sorted keys and two-space indent; NaN is refused rather than written as invalid JSON."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def save_npy_atomic(path: str | os.PathLike[str], array: Any) -> Path:
    """``numpy.save`` through :func:`atomic_write`: a killed run never leaves a truncated ``.npy``."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle, so numpy does not append ".npy" to the name
            np.save(handle, array)

    return atomic_write(path, write)

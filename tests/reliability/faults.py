"""File-system faults injected into a sweep child (we run as root, so chmod cannot refuse a write).

- ``erofs`` / ``eacces``: after ``after`` successful writes, every later attempt to create, open for
  writing, rename onto, or make a directory under the sandbox fails with EROFS / EACCES, as on a
  read-only mount or a directory without write permission. Reads still work.
- ``enospc``: the same with ENOSPC: a disk that fills up after ``after`` writes (the next file
  creation or rename fails).
- ``fsize``: ``RLIMIT_FSIZE`` of ``bytes`` with SIGXFSZ ignored, so every write past that size fails
  with EFBIG in the middle of the file, in Python, torch's C++ writer and safetensors' Rust writer
  alike: a disk full while a checkpoint is half written.

Python's ``os.open``, ``open``, ``os.mkdir``, ``os.replace``/``os.rename`` and ``os.symlink`` are
patched, and ``torch.save`` and ``safetensors.torch.save_file`` (which open files natively) raise what
they raise on a failed write. Only the child is patched; the library has no test hooks.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CODES = {"erofs": errno.EROFS, "eacces": errno.EACCES, "enospc": errno.ENOSPC}


def _replace_everywhere(original: Any, patched: Any) -> None:
    """Rebind ``original`` to ``patched`` in every loaded module that imported it by name."""
    for module in list(sys.modules.values()):
        names = getattr(module, "__dict__", {})
        for name, value in list(names.items()):
            if value is original:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(module, name, patched)


def inject(fault: dict[str, Any], sandbox: Path) -> None:
    """Apply ``fault`` (kind, after, bytes) to this process."""
    if fault["kind"] == "fsize":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fault["bytes"], fault["bytes"]))
        return
    code = CODES[fault["kind"]]
    root = str(sandbox.resolve())
    budget = [int(fault["after"])]

    def hit(path: Any) -> bool:
        if not isinstance(path, str | bytes | os.PathLike):
            return False
        where = os.path.abspath(os.fsdecode(path))
        if not (where == root or where.startswith(root + os.sep)):
            return False
        budget[0] -= 1
        return budget[0] < 0

    def refuse(path: Any) -> None:
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    real_replace, real_rename, real_symlink = os.replace, os.rename, os.symlink
    real_save, real_save_file = torch.save, safetensors.torch.save_file

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+") and hit(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & WRITE_FLAGS and hit(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if hit(path):
            refuse(path)
        real_mkdir(path, *args, **kwargs)

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if hit(dst):
            refuse(dst)
        real_replace(src, dst, *args, **kwargs)

    def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if hit(dst):
            refuse(dst)
        real_rename(src, dst, *args, **kwargs)

    def symlink(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if hit(dst):
            refuse(dst)
        real_symlink(src, dst, *args, **kwargs)

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        if hit(f):  # what torch raises when its zip writer cannot write
            raise RuntimeError(f"File {os.fsdecode(f)} cannot be opened.")
        real_save(obj, f, *args, **kwargs)

    def save_file(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> None:
        if hit(filename):
            raise safetensors.SafetensorError(f"Error while serializing: IoError(Os {{ code: {code} }})")
        real_save_file(tensors, filename, *args, **kwargs)

    for original, patched in [
        (real_open, open_),
        (real_os_open, os_open),
        (real_mkdir, mkdir),
        (real_replace, replace),
        (real_rename, rename),
        (real_symlink, symlink),
        (real_save, save),
        (real_save_file, save_file),
    ]:
        _replace_everywhere(original, patched)
    io.open = builtins.open = open_  # type: ignore[assignment]

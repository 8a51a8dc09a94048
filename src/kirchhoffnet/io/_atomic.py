"""Atomic file writes: a reader sees the old file or the new one, never a torn one."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from kirchhoffnet.errors import DataError, KirchhoffError, SolverError
from kirchhoffnet.io.paths import os_error_in, storage_error

TMP_SUFFIX = ".kn-tmp"
"""Temporary files are ``.<target>.<random>.kn-tmp``: unmistakably ours, and they name their target."""
_TARGET_IN_TMP = 200  # bytes of the target's name kept in a temporary name (a name is at most 255 bytes)
_RANDOM = re.compile(r"[a-z0-9_]{8}")  # what tempfile puts between prefix and suffix


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    ``os.replace`` is atomic on POSIX and Windows within one file system, so a crash at any
    moment leaves either the previous file or the complete new one. The temporary file is created
    with ``O_EXCL | O_NOFOLLOW`` (``mkstemp``), and the rename replaces a symbolic link at ``path``
    rather than following it. The file gets the mode a plain ``open`` would give it (0666 less the
    umask), not the 0600 of ``mkstemp``, so that other users and tools can read results as usual.

    Raises:
        StorageError: the write failed in the operating system (a full disk, no permission, a
            read-only file system, ...); the previous file at ``path`` is intact and no temporary
            file is left.
    """
    target = Path(path)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_tmp_prefix(target.name), suffix=TMP_SUFFIX, dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        write(tmp)
        _settle(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        cause = _storage_failure(exc, tmp)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if cause is None:
            raise
        kept = "the previous file is intact" if target.is_file() else "nothing was written"
        raise storage_error(cause, target, "writing", kept) from None
    return target


def _settle(tmp: Path) -> None:
    """Give the written file its final mode and flush it to disk, through a descriptor opened without
    following links: after ``write()``, which may have replaced the file, never touch anything else."""
    fd = os.open(tmp, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        os.fsync(fd)
    finally:
        os.close(fd)


def _storage_failure(exc: BaseException, tmp: Path | None) -> OSError | None:
    """The OS failure behind a failed write, or None when it was something else (a bug, an interrupt,
    a refusal of kirchhoffnet's own)."""
    if not isinstance(exc, Exception) or isinstance(exc, KirchhoffError):
        return None
    found = os_error_in(exc) or (_probe(tmp) if tmp is not None else None)
    if found is None and type(exc) is OSError:
        return exc  # an I/O failure whose errno the writer lost (numpy: "N requested and M written")
    return found


def _probe(tmp: Path) -> OSError | None:
    """Ask the OS why a write failed when the writer lost the errno (numpy's short writes, torch's file
    writer): appending to the same file fails the same way on a full disk or past the size limit."""
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        os.write(fd, bytes(1 << 20))
        os.fsync(fd)
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
    return None


def _tmp_prefix(name: str) -> str:
    """``.<name>.``, the name cut to `_TARGET_IN_TMP` bytes so that the temporary name fits in 255."""
    return f".{os.fsdecode(os.fsencode(name)[:_TARGET_IN_TMP])}."


def _umask() -> int:
    """The process's umask; reading it means setting it, so it is put straight back."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_orphans(folder: str | os.PathLike[str], targets: Iterable[str]) -> list[Path]:
    """Delete the temporary files that writers killed mid-write of ``targets`` (file names) left in
    ``folder``; returns them.

    Only names [`atomic_write`][kirchhoffnet.io.atomic_write] gives its temporary files for one of ``targets`` match,
    and only regular files (never a symbolic link) are removed: a user's ``.notes.tmp`` stays. Only safe while no
    other process writes there (a training run holds its directory's lock).
    """
    prefixes = {_tmp_prefix(name) for name in targets}
    orphans = []
    for candidate in sorted(Path(folder).glob(f".*{TMP_SUFFIX}")):
        name = candidate.name
        middle = name[: -len(TMP_SUFFIX)]
        ours = any(
            middle.startswith(prefix) and _RANDOM.fullmatch(middle[len(prefix) :]) is not None for prefix in prefixes
        )
        if ours and candidate.is_file() and not candidate.is_symlink():
            candidate.unlink(missing_ok=True)
            orphans.append(candidate)
    return orphans


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(text)

    return atomic_write(path, write)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """JSON with sorted keys and two-space indent. A NaN or infinity is refused
    ([`SolverError`][kirchhoffnet.errors.SolverError] naming where it is) rather than written as invalid JSON: no result
    file ever holds one."""
    try:
        text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
    except ValueError:
        where, value = _first_non_finite(data, "")
        if where is None:
            raise
        raise SolverError(
            f"{Path(path).name} not written: {where or 'the result'} is {value}; a result is never NaN or "
            "infinite (the computation diverged: check the model's capacitances, solver and options)"
        ) from None
    return write_text_atomic(path, text + "\n")


def _first_non_finite(data: Any, where: str) -> tuple[str | None, float]:
    """The key path (``a.b[2]``) and value of the first NaN or infinity in a JSON-like document."""
    if isinstance(data, float):
        return (where, data) if not math.isfinite(data) else (None, 0.0)
    items: Any = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list | tuple) else ()
    for key, value in items:
        found = _first_non_finite(value, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}".lstrip("."))
        if found[0] is not None:
            return found
    return None, 0.0


def save_npy_atomic(path: str | os.PathLike[str], array: Any) -> Path:
    """``numpy.save`` through [`atomic_write`][kirchhoffnet.io.atomic_write]: a killed run never leaves a truncated
    ``.npy``."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle, so numpy does not append ".npy" to the name
            np.save(handle, array)

    return atomic_write(path, write)


def save_npy_batches_atomic(
    path: str | os.PathLike[str], shape: Sequence[int], batches: Iterable[Any], dtype: Any = "float32"
) -> Path:
    """Stream ``batches`` (arrays whose rows concatenate to ``shape``) into one ``.npy``, atomically.

    Only one batch is in memory at a time: the ``.npy`` header is written first, then each batch's
    bytes in turn, so 10^6 MNIST-sized samples (3 GB) need no more memory than one batch. (A
    ``numpy`` memmap would not do: every page written to it stays in the process's resident set.)

    Raises:
        DataError: a batch's trailing shape differs from ``shape``, or the rows do not add up.
    """
    import numpy as np
    from numpy.lib import format as npy

    dtype = np.dtype(dtype)
    shape = tuple(int(size) for size in shape)

    def write(tmp: Path) -> None:
        rows = 0
        with open(tmp, "wb") as handle:
            header = {"descr": npy.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
            npy.write_array_header_1_0(handle, header)
            for batch in batches:
                block = np.ascontiguousarray(batch, dtype=dtype)
                if block.shape[1:] != shape[1:] or rows + len(block) > shape[0]:
                    raise DataError(
                        f"batch of shape {block.shape} does not fit rows {rows}.. of an array {shape} ({path})"
                    )
                handle.write(block.tobytes())
                rows += len(block)
        if rows != shape[0]:
            raise DataError(f"batches gave {rows} rows but the array has {shape[0]} ({path}); nothing was written")

    return atomic_write(path, write)

"""The lock of a run directory: one writer at a time, and a planted link can never redirect it.

``.lock`` is held with ``flock`` while a process writes the directory; the kernel drops it when the
process dies, so a killed run never leaves a stale lock behind, and the temporary files of the writes
it was killed in are deleted by the next process that takes the lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from kirchhoffnet.errors import StorageError, TrainingError
from kirchhoffnet.io._atomic import remove_orphans
from kirchhoffnet.io.paths import prepare_out_dir, shown_path, storage_error

LOCK = ".lock"


class DirectoryLock:
    """An exclusive ``flock`` on ``<run_dir>/.lock``, released on `release` or process exit.

    The lock file is opened without following a symbolic link and must be a regular file with one
    link, so a planted link can never make the lock truncate a file elsewhere. Once it is held, the
    temporary files that a killed predecessor left while writing one of ``outputs`` are removed.
    """

    def __init__(self, run_dir: Path, outputs: Iterable[str]) -> None:
        prepare_out_dir(run_dir)
        path = run_dir / LOCK
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _foreign_lock(path, "a symbolic link") from None
            raise storage_error(exc, path, "opening") from None
        info = os.fstat(self._fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            os.close(self._fd)
            raise _foreign_lock(path, "not a regular file" if not stat.S_ISREG(info.st_mode) else "a hard link")
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise TrainingError(
                f"run directory {run_dir} is in use by another process (pid {shown_path(holder, 12)}); wait for it "
                "to end or choose another --out"
            ) from None
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, str(os.getpid()).encode(), 0)
        except OSError as exc:
            self.release()
            raise storage_error(exc, path, "writing") from None
        remove_orphans(run_dir, outputs)  # torn writes of a killed predecessor; we are the only writer now

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def refuse_previous_run(run_dir: Path, outputs: Iterable[str], fix: str) -> None:
    """A new run never replaces another run's files, finished or not:
    [`TrainingError`][kirchhoffnet.errors.TrainingError] naming them if ``run_dir`` holds any of ``outputs`` (a run
    killed before its first checkpoint included)."""
    found = [name for name in outputs if os.path.lexists(run_dir / name)]
    if found:
        raise TrainingError(f"{shown_path(run_dir)} already holds another run ({', '.join(found[:3])}); {fix}")


def _foreign_lock(path: Path, what: str) -> StorageError:
    error = StorageError(
        f"{shown_path(path)} is {what}, not the run's own lock file; remove it (the lock is recreated) or "
        "choose another --out"
    )
    error.errno = errno.ELOOP
    return error

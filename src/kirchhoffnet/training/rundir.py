"""The run directory: one training run's files, guarded by a lock against a second writer.

Layout: ``config.yaml`` (the resolved config), ``checkpoint.pt`` (resumable state),
``model.safetensors`` (the trained model), ``metrics.json`` (curves and final metrics) and the
plots. ``.lock`` is held with ``flock`` while a process trains; the kernel drops it when the
process dies, so a killed run never leaves a stale lock behind; the temporary files of writes it
was killed in are deleted by the next process that takes the lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from kirchhoffnet.config import Config, parse_config, to_yaml
from kirchhoffnet.errors import StorageError, TrainingError
from kirchhoffnet.io import RUN_MODEL, write_text_atomic
from kirchhoffnet.io.atomic import remove_orphans
from kirchhoffnet.io.paths import prepare_out_dir, shown_path, storage_error
from kirchhoffnet.training.state import CHECKPOINT

CONFIG = "config.yaml"
METRICS = "metrics.json"
LOCK = ".lock"
RUN_OUTPUTS = (
    CONFIG,
    CHECKPOINT,
    RUN_MODEL,
    METRICS,
    "loss.png",
    "samples.npy",
    "samples.png",
    "density.png",
    "confusion_matrix.png",
    "predicted_vs_true.png",
)
"""Every file a run writes into its directory: the only targets whose torn temporary files are removed."""
# Settings that may differ when a run is resumed: where and how fast it runs, not what it computes.
RESUMABLE_CHANGES = ("device", "threads")


class RunLock:
    """An exclusive ``flock`` on ``<run_dir>/.lock``, released on :meth:`release` or process exit.

    The lock file is opened without following a symbolic link and must be a regular file with one
    link, so a planted link can never make the lock truncate a file elsewhere.
    """

    def __init__(self, run_dir: Path) -> None:
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
        remove_orphans(run_dir, RUN_OUTPUTS)  # torn writes of a killed predecessor; we are the only writer now

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def _foreign_lock(path: Path, what: str) -> StorageError:
    error = StorageError(
        f"{shown_path(path)} is {what}, not the run's own lock file; remove it (the lock is recreated) or "
        "choose another --out"
    )
    error.errno = errno.ELOOP
    return error


def prepare(run_dir: Path, config: Config, resume: bool) -> None:
    """Check that ``run_dir`` may start (or, with ``resume``, continue) this run; write its config."""
    has_run = (run_dir / CHECKPOINT).is_file()
    if resume:
        if not has_run:
            raise TrainingError(f"nothing to resume in {run_dir}: it holds no {CHECKPOINT}")
        saved = read_run_config(run_dir)
        changed = _differences(saved.model_dump(mode="json"), config.model_dump(mode="json"))
        changed = [k for k in changed if k not in RESUMABLE_CHANGES]
        if changed:
            raise TrainingError(
                f"cannot resume {run_dir} with a different config: {', '.join(changed[:6])} changed; "
                "resume with the same settings or start a new run in another --out"
            )
    elif has_run:
        raise TrainingError(
            f"run directory {run_dir} already holds a run ({CHECKPOINT}); pass --resume to continue it "
            "or choose another --out"
        )
    write_text_atomic(run_dir / CONFIG, to_yaml(config))


def read_run_config(run_dir: Path) -> Config:
    """The validated config of a run directory."""
    path = run_dir / CONFIG
    if not path.is_file():
        raise TrainingError(f"{run_dir} is not a run directory: it has no {CONFIG}")
    data = yaml.safe_load(path.read_text())
    return parse_config(data if isinstance(data, dict) else {}, str(path))


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]

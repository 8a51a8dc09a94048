"""The run directory: one training run's files, guarded by a lock against a second writer.

Layout: ``config.yaml`` (the resolved config), ``checkpoint.pt`` (resumable state),
``model.safetensors`` (the trained model), ``metrics.json`` (curves and final metrics) and the
plots. ``.lock`` is held with ``flock`` while a process trains; the kernel drops it when the
process dies, so a killed run never leaves a stale lock behind; the temporary files of writes it
was killed in are deleted by the next process that takes the lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from kirchhoffnet.config import Config, parse_config, to_yaml
from kirchhoffnet.errors import TrainingError
from kirchhoffnet.io import write_text_atomic
from kirchhoffnet.io.atomic import remove_orphans
from kirchhoffnet.training.state import CHECKPOINT
from kirchhoffnet.yamlfile import read_yaml_mapping

CONFIG = "config.yaml"
METRICS = "metrics.json"
LOCK = ".lock"
# Settings that may differ when a run is resumed: where and how fast it runs, not what it computes.
RESUMABLE_CHANGES = ("device", "threads")


class RunLock:
    """An exclusive ``flock`` on ``<run_dir>/.lock``, released on :meth:`release` or process exit."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / LOCK
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise TrainingError(
                f"run directory {run_dir} is in use by another process (pid {holder}); wait for it to end or "
                "choose another --out"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)
        remove_orphans(run_dir)  # torn writes of a killed predecessor; we are the only writer now

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


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
    return parse_config(read_yaml_mapping(path, error=TrainingError, label="run config"), str(path))


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]

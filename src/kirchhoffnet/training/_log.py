"""What a run logs while it trains, beside the checkpoint: ``metrics.csv`` (one row per epoch, readable by
any tool while the run goes on, where ``metrics.json`` is rewritten only at checkpoints), TensorBoard events
(when the ``tensorboard`` extra is installed) and the record of each session that trained it (versions, git
commit, command line, start time).

A resumed run rewrites ``metrics.csv`` from its checkpoint's history first: rows of epochs the killed process
logged after its last checkpoint are dropped, and the resumed process logs them again, once.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from kirchhoffnet.errors import ConfigError
from kirchhoffnet.io import write_text_atomic
from kirchhoffnet.training._history import History
from kirchhoffnet.version import __version__

METRICS_CSV = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
CSV_FIELDS = ("epoch", "train_loss", "val_loss", "lr", "grad_norm", "nfe_forward", "nfe_backward", "skipped", "time_s")
"""The CSV's first columns, then one ``val_<name>`` column per number the task's validation reports."""
VERSIONS = ("torch", "numpy", "torchdiffeq", "torchsde")


def session() -> dict[str, Any]:
    """Who trained now: package versions, the git commit of kirchhoffnet's source (None outside a
    checkout), the command line and the start time (UTC, ISO 8601)."""
    versions: dict[str, str | None] = {"kirchhoffnet": __version__, "python": platform.python_version()}
    for name in VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv),
        "versions": versions,
        **git_commit(Path(__file__).resolve().parent.parent),
    }


def git_commit(source: Path) -> dict[str, Any]:
    """``{"git_commit", "git_dirty"}`` of the checkout holding ``source``; both None when git is missing or
    ``source`` is not tracked (an installed wheel, even inside a user's own repository)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=source, capture_output=True, text=True, timeout=10)

    try:
        if git("ls-files", "--error-unmatch", "__init__.py").returncode:
            return {"git_commit": None, "git_dirty": None}
        head, status = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    if head.returncode or status.returncode:
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": head.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


def plain_sessions(value: Any) -> list[dict[str, Any]]:
    """The sessions a checkpoint recorded, if they are what `session` writes (a checkpoint from before
    sessions were recorded, or a hand-edited one, contributes none)."""
    if not isinstance(value, list):
        return []

    def plain(item: Any) -> bool:
        if isinstance(item, dict):
            return all(isinstance(k, str) and plain(v) for k, v in item.items())
        return item is None or isinstance(item, str | bool)

    return [item for item in value if isinstance(item, dict) and plain(item)]


class RunLog:
    """Writes each history row to ``metrics.csv`` and, with the extra, to TensorBoard (rank 0 only).

    Args:
        run_dir: the run directory.
        history: the rows already recorded (a resumed run's checkpoint history; empty for a new run).
        tensorboard: True requires the ``tensorboard`` package, False writes no events, None writes them
            when it is installed.
    """

    def __init__(self, run_dir: Path, history: list[dict[str, Any]], tensorboard: bool | None) -> None:
        self.path = run_dir / METRICS_CSV
        self.fields: list[str] | None = None
        text = io.StringIO()
        for row in history:
            text.write(self._line(row))
        write_text_atomic(self.path, text.getvalue())  # drops rows logged after the checkpoint
        self.writer = _tensorboard(run_dir / TENSORBOARD_DIR, tensorboard, len(history))

    def _line(self, row: dict[str, Any]) -> str:
        """The CSV text of ``row``, after the header when it is the first row."""
        validation = {f"val_{k}": v for k, v in (row.get("validation") or {}).items() if _number(v) and k != "loss"}
        values = {**{k: row.get(k) for k in CSV_FIELDS}, **validation}
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if self.fields is None:
            self.fields = [*CSV_FIELDS, *validation]
            writer.writerow(self.fields)
        writer.writerow(["" if values.get(k) is None else values[k] for k in self.fields])
        return out.getvalue()

    def write(self, row: dict[str, Any]) -> None:
        """Append one row with a single write, flushed: a reader sees whole rows only, but for the last
        when the process dies mid-write (which the resumed run's rewrite removes)."""
        with self.path.open("a") as file:
            file.write(self._line(row))
        if self.writer is not None:
            for key, value in {**row, **{f"val/{k}": v for k, v in (row.get("validation") or {}).items()}}.items():
                if key not in ("epoch", "validation") and _number(value) and math.isfinite(value):
                    self.writer.add_scalar(key, value, row["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _tensorboard(directory: Path, wanted: bool | None, first_epoch: int) -> Any:
    """A SummaryWriter (events of epochs >= ``first_epoch`` from a killed session purged), or None."""
    if wanted is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if wanted:
            raise ConfigError(
                "tensorboard logging was requested but the tensorboard package is not installed; "
                "pip install 'kirchhoffnet[tensorboard]'"
            ) from None
        return None
    return SummaryWriter(str(directory), purge_step=first_epoch or None)


def postfix(epoch: int, loss: float, nfe: tuple[int, int], history: History) -> dict[str, Any]:
    """The figures a progress bar or line shows after a step of (0-based) ``epoch``."""
    post: dict[str, Any] = {"epoch": epoch + 1, "loss": f"{loss:.4g}"}
    if nfe[0]:
        post["nfe"] = f"{nfe[0]}+{nfe[1]}"
    val = history.last_val_loss()
    if val is not None:
        post["val"] = f"{val:.4g}"
    return post

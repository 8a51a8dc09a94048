"""The record a run keeps of its epochs: one history row per epoch (what metrics.json and loss.png
show), the running sums of the epoch in progress, and the JSON form of what it reports."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.tasks.plots import loss_curves
from kirchhoffnet.training._distributed import Cluster, total

HISTORY = (
    "epoch",
    "train_loss",
    "val_loss",
    "validation",
    "lr",
    "nfe_forward",
    "nfe_backward",
    "grad_norm",
    "skipped",
    "time_s",
)
_SUMS = ("loss", "steps", "nfe_forward", "nfe_backward", "grad", "skip")


class History:
    """Per-epoch columns (the keys of `HISTORY`) and the sums of the epoch in progress.

    Both are plain dicts of lists and floats, so that a checkpoint stores them as they are and a
    resumed run goes on summing where the interrupted one stopped.
    """

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {k: [] for k in HISTORY}
        self.partial: dict[str, float] = dict.fromkeys(_SUMS, 0.0)

    def add_step(self, loss: float, norm: float, skipped: bool, nfe: tuple[int, int]) -> None:
        """Count one optimiser step; a skipped (non-finite) step enters no average."""
        if skipped:
            self.partial["skip"] += 1
            return
        self.partial["loss"] += loss
        self.partial["steps"] += 1
        self.partial["grad"] += norm
        self.partial["nfe_forward"] += nfe[0]
        self.partial["nfe_backward"] += nfe[1]

    def close_epoch(self, epoch: int, lr: float, elapsed: float, cluster: Cluster) -> dict[str, Any]:
        """The row of the epoch just trained, averaged over the steps of every rank (without its
        validation); the sums start again from zero."""
        loss, steps, fwd, bwd, grad, skipped = total([self.partial[k] for k in _SUMS], cluster)
        self.partial = dict.fromkeys(self.partial, 0.0)
        done = max(steps, 1.0)
        return {
            "epoch": epoch,
            "train_loss": loss / done if steps else None,
            "val_loss": None,
            "lr": lr,
            "nfe_forward": fwd / done,
            "nfe_backward": bwd / done,
            "grad_norm": grad / done if steps else None,
            "skipped": int(skipped),
            "time_s": elapsed,
        }

    def append(self, row: dict[str, Any]) -> None:
        """Add a row; the columns it does not name get ``None``."""
        for key, column in self.columns.items():
            column.append(row.get(key))

    def plot(self, path: Path, title: str) -> Path:
        """The loss curves so far, written to ``path``."""
        return save_figure(loss_curves(self.columns, title), path)

    def rows(self) -> list[dict[str, Any]]:
        """The rows, oldest first (what `append` was given, with ``None`` for what it did not name)."""
        return [dict(zip(self.columns, values, strict=True)) for values in zip(*self.columns.values(), strict=True)]

    def last(self) -> dict[str, Any]:
        """The latest value of each column (``None`` before the first row)."""
        return {k: (v[-1] if v else None) for k, v in self.columns.items()}

    def last_val_loss(self) -> float | None:
        """The latest validation loss; epochs without a validation are passed over."""
        return next((v for v in reversed(self.columns["val_loss"]) if v is not None), None)


def json_safe(value: Any) -> Any:
    """Non-finite floats become null: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

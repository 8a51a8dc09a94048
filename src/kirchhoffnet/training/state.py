"""Resumable training state: what a checkpoint holds and how it is written and read.

A checkpoint is one ``torch.save`` file of plain containers and tensors (model, optimiser and
scheduler state, epoch/step counters, metric history, best validation, RNG states), so it loads
with ``weights_only=True`` and can never execute code. It is written atomically and never with
non-finite parameters.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.errors import CheckpointError, TrainingError
from kirchhoffnet.io import atomic_write

CHECKPOINT = "checkpoint.pt"
FORMAT = "kirchhoffnet-training-1"


def rng_state() -> dict[str, Any]:
    """The global RNG states of torch, NumPy and Python, as checkpoint-safe values."""
    numpy_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    name, keys, pos, has_gauss, cached = numpy_state
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": _listify(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _listify(value: Any) -> Any:
    return [_listify(v) for v in value] if isinstance(value, tuple) else value


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy and Python's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` torch CPU threads (unchanged when None), restoring the previous count."""
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The RNG of one training step, a pure function of (seed, rank, step).

    Sampling inside a step (dequantisation noise, base samples) draws from it, so a resumed run
    replays exactly the draws an uninterrupted one would make, whatever the interruption.
    """
    words = np.random.SeedSequence([seed, rank, step]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


def finite_state(state: dict[str, Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write a training state atomically; refuse non-finite parameters.

    Raises:
        StorageError: the disk is full or the file cannot be written; the previous checkpoint is intact.
    """
    for key in ("model", "best_model"):
        if state.get(key) is not None and not finite_state(state[key]):
            raise TrainingError(
                f"refusing to write {path}: the {key.replace('_', ' ')} holds NaN or infinite parameters"
            )
    payload = {"format": FORMAT, **state}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle: a failed write surfaces as its OSError (ENOSPC, ...),
            torch.save(payload, handle)  # which torch's own file writer would hide in a bare RuntimeError

    return atomic_write(path, write)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A training state written by :func:`save_checkpoint`."""
    if not path.is_file():
        raise CheckpointError(f"no training checkpoint {path}; nothing to resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only runs no code: any failure on corrupt bytes is a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"cannot read training checkpoint {path} (truncated?): {first[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a kirchhoffnet training checkpoint")
    return state

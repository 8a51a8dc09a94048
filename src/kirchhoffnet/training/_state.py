"""Resumable training state: what a checkpoint holds and how it is written and read.

A checkpoint is one ``torch.save`` file of plain containers and tensors (model, optimiser and
scheduler state, epoch/step counters, metric history, best validation, RNG states), so it loads
with ``weights_only=True`` and can never execute code. It is written atomically and never with
non-finite parameters.
"""

from __future__ import annotations

import math
import random
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet._schema import count, entry, expect, number
from kirchhoffnet.errors import CheckpointError, TrainingError, shown
from kirchhoffnet.io import atomic_write
from kirchhoffnet.training._history import HISTORY, History

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
    for key in ("model", "best_model", "average"):
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
    """A training state written by `save_checkpoint`."""
    if not path.is_file():
        raise CheckpointError(f"no training checkpoint {path}; nothing to resume")
    try:
        with warnings.catch_warnings():  # a hostile file's pickle protocol warns before it fails: one line only
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only runs no code: any failure on corrupt bytes is a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"cannot read training checkpoint {path} (truncated?): {first[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a kirchhoffnet training checkpoint")
    try:
        check_training_state(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}; it cannot be resumed") from None
    return state


_COUNTERS = ("epoch", "batch_in_epoch", "step", "consecutive_nan")
_SECONDS = ("elapsed_s", "cpu_time_s")
_MAX_DEPTH = 8  # optimiser and scheduler states nest three levels deep


def check_training_state(state: dict[str, Any]) -> None:
    """The structure `Trainer.state` writes, checked before anything uses it: counters are
    non-negative integers, the history holds the expected columns of numbers, the state dicts hold
    finite tensors and plain values, and the RNG states have the shapes their setters need. The model
    tensors themselves are checked by the model they are loaded into."""
    for key in ("model", "best_model", "average"):
        if key == "model" or state.get(key) is not None:
            tensors = entry(state, key, dict, "checkpoint")
            if not tensors:
                raise CheckpointError(f"checkpoint.{key} holds no tensors")
            for name, value in tensors.items():
                expect(name, str, f"checkpoint.{key} key")
                expect(value, Tensor, f"checkpoint.{key}[{shown(name)}]")
    optimizer = entry(state, "optimizer", dict, "checkpoint")
    entry(optimizer, "state", dict, "checkpoint.optimizer")
    entry(optimizer, "param_groups", list, "checkpoint.optimizer")
    _check_plain(optimizer, "checkpoint.optimizer")
    _check_plain(entry(state, "scheduler", (dict, type(None)), "checkpoint"), "checkpoint.scheduler")
    for key in _COUNTERS:
        count(entry(state, key, int, "checkpoint"), f"checkpoint.{key}")
    for key in _SECONDS:
        if number(entry(state, key, float, "checkpoint"), f"checkpoint.{key}") < 0:
            raise CheckpointError(f"checkpoint.{key} must not be negative, got {state[key]}")
    entry(state, "status", str, "checkpoint")
    _check_history(entry(state, "history", dict, "checkpoint"), entry(state, "partial", dict, "checkpoint"))
    best = entry(state, "best", dict, "checkpoint")
    if math.isnan(number(entry(best, "loss", float, "checkpoint.best"), "checkpoint.best.loss", finite=False)):
        raise CheckpointError("checkpoint.best.loss is NaN")
    if entry(best, "epoch", (int, type(None)), "checkpoint.best") is not None:
        count(best["epoch"], "checkpoint.best.epoch")
    count(entry(best, "bad_validations", int, "checkpoint.best"), "checkpoint.best.bad_validations")
    _check_rng(entry(state, "rng", dict, "checkpoint"))


def check_optimizer_state(state: dict[str, Any], params: list[Tensor]) -> None:
    """An AdamW state that fits ``params``: ``optimizer.load_state_dict`` checks only the group sizes, so
    a moment of another shape or a negative learning rate would fail (or train backwards) steps later."""
    for group, settings in enumerate(state["param_groups"]):
        where = f"checkpoint.optimizer.param_groups[{group}]"
        expect(settings, dict, where)
        for key in ("lr", "weight_decay", "eps"):
            if key in settings and number(settings[key], f"{where}.{key}") < 0:
                raise CheckpointError(f"{where}.{key} must not be negative, got {settings[key]}")
        betas = settings.get("betas", (0.0, 0.0))
        if not (isinstance(betas, list | tuple) and len(betas) == 2 and all(_fraction(b) for b in betas)):
            raise CheckpointError(f"{where}.betas must be two numbers in [0, 1), got {shown(betas)}")
    for index, moments in state["state"].items():
        where = f"checkpoint.optimizer.state[{shown(index, 20)}]"
        if not (isinstance(index, int) and 0 <= index < len(params)):
            raise CheckpointError(f"{where} names no parameter of the model ({len(params)} parameters)")
        for name, value in expect(moments, dict, where).items():
            if isinstance(value, Tensor) and value.dim() and value.shape != params[index].shape:
                raise CheckpointError(
                    f"{where}.{shown(name, 30)} has shape {tuple(value.shape)}, not the parameter's "
                    f"{tuple(params[index].shape)}"
                )


def _fraction(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1


def _check_history(columns: dict[str, Any], partial: dict[str, Any]) -> None:
    if sorted(columns) != sorted(HISTORY):
        raise CheckpointError(f"checkpoint.history must have the columns {list(HISTORY)}, got {shown(list(columns))}")
    lengths = {len(expect(columns[k], list, f"checkpoint.history.{k}")) for k in HISTORY}
    if len(lengths) != 1:
        raise CheckpointError(f"checkpoint.history columns differ in length: {sorted(lengths)}")
    for key in HISTORY:
        for row, value in enumerate(columns[key]):
            where = f"checkpoint.history.{key}[{row}]"
            if key == "validation" and value is not None:
                for metric, figure in expect(value, dict, where).items():
                    expect(figure, (float, type(None)), f"{where}.{shown(metric)}")
            elif key != "validation":
                expect(value, (float, type(None)), where)
    sums = History().partial
    if sorted(partial) != sorted(sums):
        raise CheckpointError(f"checkpoint.partial must have the keys {list(sums)}, got {shown(list(partial))}")
    for key, value in partial.items():
        number(value, f"checkpoint.partial.{key}")


def _check_rng(rng: dict[str, Any]) -> None:
    """RNG states that ``set_rng_state`` can restore (their setters fail with tracebacks otherwise)."""
    generator = entry(rng, "torch", Tensor, "checkpoint.rng")
    if generator.dtype != torch.uint8 or tuple(generator.shape) != tuple(torch.get_rng_state().shape):
        raise CheckpointError(
            f"checkpoint.rng.torch must be a uint8 tensor of shape {tuple(torch.get_rng_state().shape)}"
        )
    numpy_state = entry(rng, "numpy", list, "checkpoint.rng")
    if len(numpy_state) != 5 or numpy_state[0] != "MT19937":
        raise CheckpointError(
            f"checkpoint.rng.numpy must be ['MT19937', keys, pos, has_gauss, cached], got {shown(numpy_state)}"
        )
    keys = expect(numpy_state[1], list, "checkpoint.rng.numpy keys")
    _check_words(keys, 624, "checkpoint.rng.numpy keys")
    if not 0 <= count(numpy_state[2], "checkpoint.rng.numpy pos") <= 624:
        raise CheckpointError(f"checkpoint.rng.numpy pos must lie in 0..624, got {numpy_state[2]}")
    if count(numpy_state[3], "checkpoint.rng.numpy has_gauss") > 1:
        raise CheckpointError(f"checkpoint.rng.numpy has_gauss must be 0 or 1, got {numpy_state[3]}")
    number(numpy_state[4], "checkpoint.rng.numpy cached")
    python = entry(rng, "python", list, "checkpoint.rng")
    if len(python) != 3 or python[0] != random.getstate()[0]:
        raise CheckpointError(f"checkpoint.rng.python must be [version, words, gauss], got {shown(python)}")
    words = expect(python[1], list, "checkpoint.rng.python words")
    _check_words(words, 625, "checkpoint.rng.python words")
    if not 1 <= words[-1] <= 624:
        raise CheckpointError(f"checkpoint.rng.python position must lie in 1..624, got {words[-1]}")
    expect(python[2], (float, type(None)), "checkpoint.rng.python gauss")
    for k, cuda in enumerate(expect(rng.get("cuda", []), list, "checkpoint.rng.cuda")):
        if not isinstance(cuda, Tensor) or cuda.dtype != torch.uint8 or cuda.dim() != 1:
            raise CheckpointError(f"checkpoint.rng.cuda[{k}] must be a uint8 vector")


def _check_words(words: list[Any], length: int, where: str) -> None:
    if len(words) != length or not all(
        isinstance(w, int) and not isinstance(w, bool) and 0 <= w < 2**32 for w in words
    ):
        raise CheckpointError(f"{where} must be {length} unsigned 32-bit integers")


def _check_plain(value: Any, where: str, depth: int = 0) -> None:
    """Optimiser and scheduler states: nested dicts and lists of finite numbers, strings, None and finite
    tensors, no deeper than their real structure (a hostile nesting would exhaust the stack)."""
    if depth > _MAX_DEPTH:
        raise CheckpointError(f"{where} is nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(item, f"{where}.{shown(key, 30)}", depth + 1)
    elif isinstance(value, list | tuple):
        for k, item in enumerate(value):
            _check_plain(item, f"{where}[{k}]", depth + 1)
    elif isinstance(value, Tensor):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{where} holds NaN or infinite values")
    elif isinstance(value, float) and not math.isfinite(value):
        raise CheckpointError(f"{where} is {value}; it must be finite")
    elif not isinstance(value, bool | int | float | str | type(None)):
        raise CheckpointError(f"{where} holds a {type(value).__name__}, not a plain value")

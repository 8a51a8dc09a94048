"""Data handed to ``kn.train(config, data=...)`` in memory, and the fingerprint a run keeps of its data.

A PyTorch user holds arrays, tensors or a `torch.utils.data.Dataset`; `as_parts` turns any of
them into NumPy pairs, either one pair ``{"all": (x, y)}`` that the task splits with the config's seed, or
the user's own ``{"train", "val", "test"}`` splits. The fingerprint (shape, dtype and SHA-256 of every
array) is what a resume compares, so that a run never continues on other data than it started with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from kirchhoffnet.data.files import MAX_ELEMENTS, MAX_IMAGES
from kirchhoffnet.data.seeds import split_seed
from kirchhoffnet.errors import DataError, shown

Pair = tuple[np.ndarray, np.ndarray]
SPLIT_NAMES = ("train", "val", "test")
WHOLE = "all"
"""The key of data the task splits itself."""


def as_parts(data: Any) -> dict[str, Pair]:
    """``{"all": (x, y)}`` from a pair or a Dataset, or the splits of a mapping of them (all three).

    Args:
        data: ``(x, y)`` of arrays or tensors; a map-style ``Dataset`` whose items are ``(x, y)``;
            or a mapping ``{"train": ..., "val": ..., "test": ...}`` of either.
    """
    if isinstance(data, Mapping):
        if set(data) != set(SPLIT_NAMES):
            raise DataError(f"data: a mapping of splits needs exactly train, val and test; got {shown(sorted(data))}")
        return {split: _pair(data[split], f"data[{split!r}]") for split in SPLIT_NAMES}
    return {WHOLE: _pair(data, "data")}


def _pair(data: Any, where: str) -> Pair:
    if isinstance(data, Dataset):
        return _materialise(data, where)
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise DataError(f"{where}: give (inputs, targets), a torch Dataset of such pairs, or a dict of splits")
    return _array(data[0], where, "inputs"), _array(data[1], where, "targets")


def _array(value: Any, where: str, what: str, scalar: bool = False) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where}: the {what} are not an array: {exc}") from None
    if array.dtype.kind not in "biuf" or (array.ndim == 0 and not scalar):
        raise DataError(f"{where}: the {what} must be a numeric array of one row per sample, got {array.dtype}")
    if array.size > MAX_ELEMENTS:
        raise DataError(f"{where}: the {what} hold {array.size} values; at most {MAX_ELEMENTS}")
    return array


def _materialise(dataset: Dataset, where: str) -> Pair:
    """The items of a map-style Dataset stacked into two arrays (once: the data must fit in memory)."""
    try:
        size = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise DataError(f"{where}: the Dataset has no len(); give a map-style Dataset or arrays") from None
    if not 0 < size <= MAX_IMAGES:
        raise DataError(f"{where}: the Dataset has {size} items; between 1 and {MAX_IMAGES}")
    inputs, targets = [], []
    for k in range(size):
        item = dataset[k]
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise DataError(f"{where}: item {k} of the Dataset is not an (input, target) pair")
        inputs.append(_array(item[0], where, f"input of item {k}"))
        targets.append(_array(item[1], where, f"target of item {k}", scalar=True))
    try:
        return np.stack(inputs), np.stack(targets)
    except ValueError as exc:
        raise DataError(f"{where}: the Dataset's items differ in shape: {exc}") from None


def split_rows(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Row indices of the train, val and test splits from the seed table: test first (``test``
    stream), then validation out of the rest (``val`` stream), as the named image sets hold out theirs."""
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    if n - n_test - n_val < 2 or n_test < 1 or n_val < 1:
        raise DataError(f"{n} samples are too few for val_fraction={val_fraction} and test_fraction={test_fraction}")
    order = np.random.default_rng(split_seed(seed, "test")).permutation(n)
    rest = order[n_test:][np.random.default_rng(split_seed(seed, "val")).permutation(n - n_test)]
    return {"train": rest[n_val:], "val": rest[:n_val], "test": order[:n_test]}


def fingerprint(parts: Mapping[str, Pair]) -> dict[str, Any]:
    """Shape, dtype and SHA-256 of each array (``train.x``, ``all.y``, ...): what a resume compares."""
    arrays = {f"{split}.{axis}": a for split, pair in parts.items() for axis, a in zip("xy", pair, strict=True)}
    return {name: _digest(array) for name, array in sorted(arrays.items())}


def _digest(array: np.ndarray) -> dict[str, Any]:
    contiguous = np.ascontiguousarray(array)
    return {
        "shape": list(contiguous.shape),
        "dtype": str(contiguous.dtype),
        "sha256": hashlib.sha256(contiguous.tobytes()).hexdigest(),
    }

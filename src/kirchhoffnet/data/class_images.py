"""Class-conditional image data: the images of a few classes of a set, renumbered and shrunk to S × S.

Built on `kirchhoffnet.data.images.load_images` (the one reader of the standard files). Images
are area-averaged to P pixels per side and centre-cropped to S: the original work's P = 14, S = 12 when P is
given, else P = S + 2·round(S/6) (28 → 16 → 12 for S = 12, the offline default); pixels become floats in [0, 1].
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.data.images import SPLITS, image_set, load_images
from kirchhoffnet.errors import DataError, unknown_choice


@dataclass
class ClassImages:
    """Images (N, C, S, S) in [0, 1] with labels (N,) renumbered 0..K−1 in the order of ``classes``."""

    images: Tensor
    labels: Tensor
    classes: tuple[int, ...]
    names: tuple[str, ...]


def shrink(images: np.ndarray, size: int, pooled: int | None = None) -> Tensor:
    """uint8 (N, C, H, W) → float32 (N, C, size, size) in [0, 1]: area-average to ``pooled`` pixels per side
    (default size + 2·round(size/6)), then crop the centre ``size``."""
    pooled = size + 2 * max(1, round(size / 6)) if pooled is None else pooled
    if pooled < size:
        raise DataError(f"cannot crop {size} pixels out of images averaged to {pooled}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    x = torch.nn.functional.interpolate(x, size=(pooled, pooled), mode="area")
    top = (pooled - size) // 2
    return x[:, :, top : top + size, top : top + size].contiguous()


def load_classes(
    name: str,
    split: str,
    classes: tuple[int | str, ...] | None = None,
    size: int = 12,
    root: str | os.PathLike[str] | None = None,
    *,
    pooled: int | None = None,
    max_images: int | None = None,
    split_test_fraction: float | None = None,
    download: bool = False,
    root_key: str = "root",
    download_key: str | None = "download",
) -> ClassImages:
    """The images of ``classes`` from ``split`` of image set ``name``, renumbered and shrunk to ``size``.

    Args:
        name, root, download: as `load_images`.
        split: ``train`` or ``test``.
        classes: labels as the set numbers them (EMNIST letters 1..26) or class names (``"H"``); class
            ``classes[k]`` becomes label ``k``. None: the set's ``default_classes``.
        size: pixels per side of the returned images.
        pooled: pixels per side the images are area-averaged to before the centre crop (see `shrink`).
        max_images: keep at most the first this many selected images.
        split_test_fraction: read only the test file and split it: its first 1 − f serve as
            ``train``, the last f as ``test`` (for sets whose offline copy is ``test_only``).
        root_key, download_key: the settings a missing-file message names.

    Raises:
        DataError: as ``load_images``, or a class with no images in the split.
    """
    info = image_set(name)
    if split not in SPLITS:
        raise DataError(unknown_choice("split", split, SPLITS))
    if split_test_fraction is not None and not 0 < split_test_fraction < 1:
        raise DataError(f"split_test_fraction must lie in (0, 1), got {split_test_fraction}")
    wanted = tuple(info.label_of(c) if isinstance(c, str) else c for c in classes) if classes else info.default_classes
    if not wanted:
        raise DataError(f"{name} has no default classes; name the classes to load")
    if len(set(wanted)) != len(wanted):
        raise DataError(f"classes {list(wanted)} name a class twice")
    read = "test" if split_test_fraction is not None else split
    images, labels = load_images(name, read, root, download, root_key=root_key, download_key=download_key)
    if split_test_fraction is not None:
        cut = len(images) - round(split_test_fraction * len(images))
        images, labels = (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])
    missing = [c for c in wanted if not (labels == c).any()]
    if missing:
        span = f"labels {labels.min()}..{labels.max()}" if len(labels) else "no images"
        raise DataError(f"{name} {split} split has no images of classes {missing} ({span})")
    keep = np.isin(labels, wanted)
    images, labels = images[keep], labels[keep]
    if max_images is not None:
        images, labels = images[:max_images], labels[:max_images]
    lookup = np.zeros(int(max(wanted)) + 1, dtype=np.int64)
    lookup[list(wanted)] = np.arange(len(wanted))
    names = tuple(info.class_name(c) for c in wanted)
    return ClassImages(shrink(images, size, pooled), torch.from_numpy(lookup[labels]), wanted, names)

"""Class-conditional image data: the images of a few classes of a set, renumbered and shrunk to S × S.

Built on `kirchhoffnet.data.images.load_images` (the one reader of the standard files). Images
are area-averaged to S + 2·round(S/6) pixels per side and centre-cropped to S (28 → 16 → 12 for
S = 12, as the original work resizes and crops); pixels become floats in [0, 1].
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


def shrink(images: np.ndarray, size: int) -> Tensor:
    """uint8 (N, C, H, W) → float32 (N, C, size, size) in [0, 1]: area-average to size + 2·round(size/6), crop."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    margin = max(1, round(size / 6))  # the original work: 28 → 14, crop 12
    x = torch.nn.functional.interpolate(x, size=(size + 2 * margin, size + 2 * margin), mode="area")
    return x[:, :, margin : margin + size, margin : margin + size].contiguous()


def load_classes(
    name: str,
    split: str,
    classes: tuple[int, ...] | None = None,
    size: int = 12,
    root: str | os.PathLike[str] | None = None,
    *,
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
        classes: labels as the set numbers them (EMNIST letters 1..26); label ``classes[k]`` becomes
            ``k``. None: the set's ``default_classes``.
        size: pixels per side of the returned images.
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
    classes = tuple(classes) if classes else info.default_classes
    if not classes:
        raise DataError(f"{name} has no default classes; name the classes to load")
    if len(set(classes)) != len(classes):
        raise DataError(f"classes {list(classes)} name a class twice")
    read = "test" if split_test_fraction is not None else split
    images, labels = load_images(name, read, root, download, root_key=root_key, download_key=download_key)
    if split_test_fraction is not None:
        cut = len(images) - round(split_test_fraction * len(images))
        images, labels = (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])
    missing = [c for c in classes if not (labels == c).any()]
    if missing:
        span = f"labels {labels.min()}..{labels.max()}" if len(labels) else "no images"
        raise DataError(f"{name} {split} split has no images of classes {missing} ({span})")
    keep = np.isin(labels, classes)
    images, labels = images[keep], labels[keep]
    if max_images is not None:
        images, labels = images[:max_images], labels[:max_images]
    lookup = np.zeros(int(max(classes)) + 1, dtype=np.int64)
    lookup[list(classes)] = np.arange(len(classes))
    names = tuple(info.class_name(c) for c in classes)
    return ClassImages(shrink(images, size), torch.from_numpy(lookup[labels]), classes, names)

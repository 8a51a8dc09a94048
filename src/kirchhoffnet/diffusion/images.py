"""Class-image data of the conditional task, read from standard IDX files and shrunk to 12 × 12.

Sources: Fashion-MNIST (Debian ``dataset-fashion-mnist``), MNIST (the shared test set; split into train
and test here) and EMNIST letters (only when the user has the files; the paper's H, K, U). Images are
area-averaged to twice the target size and centre-cropped, as the paper does with resize + crop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.data import read_idx
from kirchhoffnet.errors import DataError, unknown_choice

REPO_SHARED = Path(os.environ.get("KIRCHHOFFNET_SHARED", Path(__file__).resolve().parents[3].parent / "shared"))
"""The project's shared folder (``../shared`` beside a checkout, or ``$KIRCHHOFFNET_SHARED``)."""


@dataclass(frozen=True)
class ImageSource:
    """Where a data set's IDX files are and how to read them."""

    default_dir: Path | None
    train: tuple[str, str] | None  # (images, labels) file names; None: split the test files
    test: tuple[str, str]
    default_classes: tuple[int, ...]
    class_names: dict[int, str]
    transposed: bool = False  # EMNIST stores images transposed


SOURCES = {
    "fashion-mnist": ImageSource(
        Path("/usr/share/datasets/fashion-mnist"),
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        (1, 5, 8),
        {1: "trouser", 5: "sandal", 8: "bag", 0: "t-shirt", 7: "sneaker", 9: "ankle boot"},
    ),
    "mnist": ImageSource(
        REPO_SHARED / "data" / "mnist",
        None,
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        (0, 1, 7),
        {k: str(k) for k in range(10)},
    ),
    "emnist": ImageSource(
        None,
        ("emnist-letters-train-images-idx3-ubyte.gz", "emnist-letters-train-labels-idx1-ubyte.gz"),
        ("emnist-letters-test-images-idx3-ubyte.gz", "emnist-letters-test-labels-idx1-ubyte.gz"),
        (8, 11, 21),
        {k: chr(ord("A") + k - 1) for k in range(1, 27)},
        transposed=True,
    ),
}


@dataclass
class ImageSet:
    """Images (N, 1, S, S) in [0, 1] with labels (N,) renumbered 0..C−1 in the order of ``classes``."""

    images: Tensor
    labels: Tensor
    classes: tuple[int, ...]
    names: tuple[str, ...]


def _read(directory: Path, names: tuple[str, str], dataset: str) -> tuple[np.ndarray, np.ndarray]:
    paths = [directory / name for name in names]
    for path in paths:
        if not path.is_file():
            hint = (
                "download the EMNIST 'gzip' archive from NIST and pass the folder holding its letters files "
                "as latent.data_dir"
                if dataset == "emnist"
                else f"set latent.data_dir to the folder holding the {dataset} IDX files"
            )
            raise DataError(f"{dataset} file {path.name} not found in {directory}; {hint}")
    return read_idx(paths[0]), read_idx(paths[1])


def shrink(images: np.ndarray, size: int) -> Tensor:
    """(N, 28, 28) uint8 → (N, 1, size, size) float in [0, 1]: area-average to 2·28·size/24 ≈ size + 2, crop."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    margin = max(1, round(size / 6))  # the paper: 28 → 14, crop 12
    x = torch.nn.functional.interpolate(x, size=(size + 2 * margin, size + 2 * margin), mode="area")
    return x[:, :, margin : margin + size, margin : margin + size].contiguous()


def load_images(
    dataset: str,
    split: str,
    classes: tuple[int, ...] | None = None,
    size: int = 12,
    data_dir: str | os.PathLike[str] | None = None,
    max_images: int | None = None,
) -> ImageSet:
    """The images of ``classes`` from ``split`` (``train`` or ``test``) of ``dataset``, shrunk to ``size``.

    MNIST ships only its test set here, so its first 80 % serve as ``train`` and the rest as ``test``.
    """
    if dataset not in SOURCES:
        raise DataError(unknown_choice("image data set", dataset, SOURCES))
    if split not in ("train", "test"):
        raise DataError(unknown_choice("split", split, ("train", "test")))
    source = SOURCES[dataset]
    directory = Path(data_dir) if data_dir is not None else source.default_dir
    if directory is None:
        raise DataError(f"{dataset} is not installed with the system; set latent.data_dir to the folder of its files")
    if source.train is None:
        images, labels = _read(directory, source.test, dataset)
        cut = int(0.8 * len(images))
        images, labels = (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])
    else:
        images, labels = _read(directory, source.train if split == "train" else source.test, dataset)
    if source.transposed:
        images = images.transpose(0, 2, 1)
    classes = tuple(classes) if classes else source.default_classes
    missing = [c for c in classes if not (labels == c).any()]
    if missing:
        raise DataError(
            f"{dataset} {split} split has no images of classes {missing} (labels {labels.min()}..{labels.max()})"
        )
    keep = np.isin(labels, classes)
    images, labels = images[keep], labels[keep]
    if max_images is not None:
        images, labels = images[:max_images], labels[:max_images]
    renumber = {c: i for i, c in enumerate(classes)}
    names = tuple(source.class_names.get(c, str(c)) for c in classes)
    return ImageSet(shrink(images, size), torch.tensor([renumber[int(c)] for c in labels]), classes, names)

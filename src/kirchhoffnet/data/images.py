"""Image data sets read from their standard files: MNIST, Fashion-MNIST (IDX), CIFAR-10 (python
batches), SVHN (``.mat``). No torchvision: the readers are a few lines each.

Files are looked for in a directory (``root``); with ``download=True`` missing files are fetched
from the data set's home first. A missing or corrupt file raises :class:`DataError` naming the
file, the directory and the fix.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kirchhoffnet.data.idx import read_idx
from kirchhoffnet.errors import DataError, unknown_choice
from kirchhoffnet.io import atomic_write


@dataclass(frozen=True)
class ImageSet:
    """Where an image data set's files live and what they hold.

    Attributes:
        shape: (channels, height, width) of one image.
        files: file names per split, relative to the root directory.
        url: base address the files are downloaded from.
        default_root: where the files are looked for when no root is given.
    """

    shape: tuple[int, int, int]
    files: Mapping[str, tuple[str, ...]]
    url: str
    default_root: str
    num_classes: int = 10


_IDX = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_CIFAR_DIR = "cifar-10-batches-py"

IMAGE_SETS: dict[str, ImageSet] = {
    "mnist": ImageSet((1, 28, 28), _IDX, "https://ossci-datasets.s3.amazonaws.com/mnist/", "data/mnist"),
    "fashion_mnist": ImageSet(
        (1, 28, 28),
        _IDX,
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "/usr/share/datasets/fashion-mnist",
    ),
    "cifar10": ImageSet(
        (3, 32, 32),
        {
            "train": tuple(f"{_CIFAR_DIR}/data_batch_{k}" for k in range(1, 6)),
            "test": (f"{_CIFAR_DIR}/test_batch",),
        },
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "data/cifar10",
    ),
    "svhn": ImageSet(
        (3, 32, 32),
        {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)},
        "http://ufldl.stanford.edu/housenumbers/",
        "data/svhn",
    ),
}
SPLITS = ("train", "test")


def image_set(name: str) -> ImageSet:
    if name not in IMAGE_SETS:
        raise DataError(unknown_choice("image data set", name, IMAGE_SETS))
    return IMAGE_SETS[name]


def load_images(
    name: str, split: str = "train", root: str | os.PathLike[str] | None = None, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split.

    Args:
        name: ``mnist``, ``fashion_mnist``, ``cifar10`` or ``svhn``.
        split: ``train`` or ``test``.
        root: directory with the standard files; default the data set's usual place.
        download: fetch missing files from the data set's home first.

    Returns:
        ``(images, labels)``: uint8 (N, C, H, W) and int64 (N,) with classes 0..9.

    Raises:
        DataError: unknown set or split, a missing file (saying where it was looked for), or a
            corrupt one.
    """
    info = image_set(name)
    if split not in SPLITS:
        raise DataError(unknown_choice("split", split, SPLITS))
    base = Path(root if root is not None else info.default_root).expanduser()
    paths = [base / f for f in info.files[split]]
    missing = [p for p in paths if not p.is_file()]
    if missing and download:
        _download(name, info, base)
        missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"{name} {split} file {missing[0].name} not found in {base}; put the standard {name} files there "
            f"(data.root), or set data.download: true to fetch them from {info.url}"
        )
    images, labels = _READERS[name](paths)
    if len(images) != len(labels):
        raise DataError(f"{name} {split}: {len(images)} images but {len(labels)} labels in {base}")
    if images.shape[1:] != info.shape:
        raise DataError(f"{name} {split} images in {base} have shape {images.shape[1:]}, expected {info.shape}")
    return images, labels


def _read_idx_pair(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"{paths[0]} and {paths[1]} are not an IDX image/label pair")
    return images[:, None].copy(), labels.astype(np.int64)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only: a pickle can otherwise run any code."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _read_cifar(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for path in paths:
        try:
            batch = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path} is not a CIFAR-10 python batch (corrupt download?): {exc}") from None
    return np.concatenate(images), np.concatenate(labels)


def _read_svhn(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(paths[0])
        images, labels = mat["X"], mat["y"]
    except (MatReadError, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataError(f"{paths[0]} is not an SVHN .mat file (corrupt download?): {exc}") from None
    if images.ndim != 4:
        raise DataError(f"{paths[0]} is not an SVHN .mat file: X has shape {images.shape}, expected (32, 32, 3, N)")
    labels = labels.reshape(-1).astype(np.int64) % 10  # SVHN stores digit 0 as label 10
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1)), labels


_READERS = {"mnist": _read_idx_pair, "fashion_mnist": _read_idx_pair, "cifar10": _read_cifar, "svhn": _read_svhn}


def _fetch(url: str, target: Path) -> None:
    def write(tmp: Path) -> None:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except OSError as exc:  # the network or the URL, not the disk: atomic_write must not report it as a write
            raise DataError(f"could not download {url}: {exc}") from None
        with response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)

    try:
        atomic_write(target, write)
    except OSError as exc:  # StorageError (a full disk, ...) or a connection lost mid-download
        raise DataError(f"could not download {url} to {target}: {exc}") from None


def _download(name: str, info: ImageSet, base: Path) -> None:
    if name == "cifar10":
        archive = base / Path(info.url).name
        if not archive.is_file():
            _fetch(info.url, archive)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(base, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise DataError(f"{archive} is not a readable tar.gz archive: {exc}") from None
        return
    for split in SPLITS:
        for file in info.files[split]:
            if not (base / file).is_file():
                _fetch(info.url + file, base / file)


def flatten_images(images: np.ndarray, downsample: int = 1) -> np.ndarray:
    """uint8 images (N, C, H, W) → float32 (N, C·h·w) in [0, 1], average-pooled by ``downsample``.

    Pixels are flattened channel-major, row by row: the node order of the image topologies.
    """
    n, c, h, w = images.shape
    if h % downsample or w % downsample:
        raise DataError(f"downsample {downsample} does not divide the {h}x{w} images")
    pooled = images.reshape(n, c, h // downsample, downsample, w // downsample, downsample).mean(axis=(3, 5))
    return (pooled.reshape(n, -1) / 255.0).astype(np.float32)

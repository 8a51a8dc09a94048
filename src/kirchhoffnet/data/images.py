"""Image data sets read from their standard files: MNIST, Fashion-MNIST, EMNIST letters and byclass (IDX), CIFAR-10
(python batches), SVHN (``.mat``). No torchvision: the readers are a few lines each.

Files are looked for in a directory (``root``); with ``download=True`` missing files are fetched
from the data set's home first. A missing or corrupt file raises [`DataError`][kirchhoffnet.errors.DataError] naming the
file, the directory and the fix. Class-conditional subsets shrunk to S × S are
`kirchhoffnet.data.class_images.load_classes`.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kirchhoffnet.data._idx import read_idx
from kirchhoffnet.errors import DataError, unknown_choice
from kirchhoffnet.io import atomic_write


@dataclass(frozen=True)
class ImageSet:
    """Where an image data set's files live and what they hold.

    Attributes:
        shape: (channels, height, width) of one image.
        files: file names per split, relative to the root directory.
        url: base address the files are downloaded from, or the address of one ``.tar.gz``/``.zip``
            archive that holds them.
        default_root: where the files are looked for when no root is given (relative to the working
            directory unless absolute; never the source tree).
        class_names: name of each class, in label order from ``first_label``.
        first_label: the label of the first class (EMNIST letters number A..Z as 1..26).
        transposed: the files store each image transposed (EMNIST); the reader turns them upright.
        test_only: an offline copy may hold only the test files (MNIST's ``t10k-*``); class-conditional
            tasks then split the test file
            (``load_classes(..., split_test_fraction=...)``).
        default_classes: the classes a class-conditional task generates when none are given.
    """

    shape: tuple[int, int, int]
    files: Mapping[str, tuple[str, ...]]
    url: str
    default_root: str
    class_names: tuple[str, ...] = ()
    first_label: int = 0
    transposed: bool = False
    test_only: bool = False
    default_classes: tuple[int, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labels(self) -> range:
        """The labels the files use."""
        return range(self.first_label, self.first_label + self.num_classes)

    def label_of(self, name: str) -> int:
        """The label of the class called ``name`` (case-sensitive: EMNIST byclass has both ``H`` and ``h``)."""
        if name not in self.class_names:
            raise DataError(unknown_choice("class", name, self.class_names))
        return self.first_label + self.class_names.index(name)

    def class_name(self, label: int) -> str:
        """The name of class ``label`` (the label itself when the set names none)."""
        k = label - self.first_label
        return self.class_names[k] if 0 <= k < len(self.class_names) else str(label)


_IDX = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _emnist_files(kind: str) -> dict[str, tuple[str, str]]:
    """The gzip IDX files of one EMNIST split as NIST's ``gzip.zip`` names them."""
    return {
        split: (f"emnist-{kind}-{split}-images-idx3-ubyte.gz", f"emnist-{kind}-{split}-labels-idx1-ubyte.gz")
        for split in ("train", "test")
    }


_UPPER = tuple(chr(ord("A") + k) for k in range(26))
_CIFAR_DIR = "cifar-10-batches-py"
_DIGITS = tuple(str(k) for k in range(10))

IMAGE_SETS: dict[str, ImageSet] = {
    "mnist": ImageSet(
        (1, 28, 28),
        _IDX,
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "data/mnist",
        _DIGITS,
        test_only=True,
        default_classes=(0, 1, 7),
    ),
    "fashion_mnist": ImageSet(
        (1, 28, 28),
        _IDX,
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "/usr/share/datasets/fashion-mnist",
        ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"),
        default_classes=(1, 5, 8),
    ),
    "emnist": ImageSet(  # the letters split of EMNIST: A..Z labelled 1..26, 124,800 + 20,800 images
        (1, 28, 28),
        _emnist_files("letters"),
        "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
        "data/emnist",
        _UPPER,
        first_label=1,
        transposed=True,
        default_classes=(8, 11, 21),  # H, K, U (upper and lower case merged in this split)
    ),
    "emnist_byclass": ImageSet(  # 0..9 digits, 10..35 A..Z, 36..61 a..z; 697,932 + 116,323 images
        (1, 28, 28),
        _emnist_files("byclass"),
        "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
        "data/emnist",
        _DIGITS + _UPPER + tuple(chr(ord("a") + k) for k in range(26)),
        transposed=True,
        default_classes=(17, 20, 30),  # uppercase H, K, U: the original work's classes
    ),
    "cifar10": ImageSet(
        (3, 32, 32),
        {
            "train": tuple(f"{_CIFAR_DIR}/data_batch_{k}" for k in range(1, 6)),
            "test": (f"{_CIFAR_DIR}/test_batch",),
        },
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "data/cifar10",
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    ),
    "svhn": ImageSet(
        (3, 32, 32),
        {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)},
        "http://ufldl.stanford.edu/housenumbers/",
        "data/svhn",
        _DIGITS,
    ),
}
SPLITS = ("train", "test")


def image_set(name: str) -> ImageSet:
    if name not in IMAGE_SETS:
        raise DataError(unknown_choice("image data set", name, IMAGE_SETS))
    return IMAGE_SETS[name]


def load_images(
    name: str,
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    *,
    root_key: str = "data.root",
    download_key: str | None = "data.download",
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split.

    Args:
        name: ``mnist``, ``fashion_mnist``, ``emnist`` (letters), ``emnist_byclass``, ``cifar10`` or ``svhn``.
        split: ``train`` or ``test``.
        root: directory with the standard files; default the data set's usual place.
        download: fetch missing files from the data set's home first.
        root_key, download_key: the settings a missing-file message tells the user to set (the
            caller's config keys; ``download_key=None``: the caller cannot download).

    Returns:
        ``(images, labels)``: uint8 (N, C, H, W), upright, and int64 (N,) as the set labels its
        classes (``ImageSet.labels``: 0..9, EMNIST letters 1..26, EMNIST byclass 0..61).

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
        _download(info, base)
        missing = [p for p in paths if not p.is_file()]
    if missing:
        fetch = (
            f"set {download_key}: true to fetch them from {info.url}"
            if download_key is not None
            else f"download them from {info.url}"
        )
        raise DataError(
            f"{name} {split} file {missing[0].name} not found in {base}; put the standard {name} files there "
            f"({root_key}), or {fetch}"
        )
    images, labels = _READERS[name](paths)
    if len(images) != len(labels):
        raise DataError(f"{name} {split}: {len(images)} images but {len(labels)} labels in {base}")
    if info.transposed:
        images = np.ascontiguousarray(images.transpose(0, 1, 3, 2))
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


_READERS = {
    "mnist": _read_idx_pair,
    "fashion_mnist": _read_idx_pair,
    "emnist": _read_idx_pair,
    "emnist_byclass": _read_idx_pair,
    "cifar10": _read_cifar,
    "svhn": _read_svhn,
}


def fetch(url: str, target: Path) -> None:
    """Download ``url`` to ``target`` atomically; any failure is one [`DataError`][kirchhoffnet.errors.DataError]
    line."""

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


def _download(info: ImageSet, base: Path) -> None:
    wanted = [file for split in SPLITS for file in info.files[split]]
    if info.url.endswith((".tar.gz", ".zip")):  # one archive holds every file
        archive = base / Path(info.url).name
        if not archive.is_file():
            fetch(info.url, archive)
        unpack(archive, base, set(wanted))
        return
    for file in wanted:
        if not (base / file).is_file():
            fetch(info.url + file, base / file)


def unpack(archive: Path, base: Path, wanted: set[str]) -> None:
    """Unpack a ``.tar.gz`` whole (CIFAR-10), or of a ``.zip`` the wanted files by name into ``base`` (EMNIST)."""
    try:
        if archive.name.endswith(".tar.gz"):
            with tarfile.open(archive) as tar:
                tar.extractall(base, filter="data")
            return
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():
                name = Path(member.filename).name
                if name in wanted and not (base / name).is_file():

                    def copy(tmp: Path, member: zipfile.ZipInfo = member) -> None:
                        with zipped.open(member) as source, open(tmp, "wb") as out:
                            shutil.copyfileobj(source, out)

                    atomic_write(base / name, copy)
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise DataError(f"{archive} is not a readable archive (corrupt download?): {exc}") from None


def flatten_images(images: np.ndarray, downsample: int = 1, scale: float = 255.0) -> np.ndarray:
    """Images (N, C, H, W) → float32 (N, C·h·w) divided by ``scale`` (uint8 → [0, 1]), average-pooled by
    ``downsample``.

    Pixels are flattened channel-major, row by row: the node order of the image topologies.
    """
    n, c, h, w = images.shape
    if h % downsample or w % downsample:
        raise DataError(f"downsample {downsample} does not divide the {h}x{w} images")
    pooled = images.reshape(n, c, h // downsample, downsample, w // downsample, downsample).mean(axis=(3, 5))
    return (pooled.reshape(n, -1) / scale).astype(np.float32)

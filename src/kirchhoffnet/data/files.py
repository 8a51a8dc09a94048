"""Users' own data files: a regression table (CSV with a header, or NPZ arrays) and labelled images
(NPZ arrays, or a folder per class of PNG files).

Anyone's file reaches these readers, so every check runs before an array reaches torch: the file's
size, an NPZ array's declared shape and dtype (read from its header before its data), numeric and
finite cells, and consistent lengths. Each failure is one [`DataError`][kirchhoffnet.errors.DataError] line
naming the file and the row, column or array.
"""

from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kirchhoffnet._textfile import read_text
from kirchhoffnet.errors import DataError, shown

MAX_CSV_BYTES = 256 << 20
MAX_ELEMENTS = 100_000_000
"""Most values one array may hold (800 MB as float64): a header may declare any shape."""
MAX_IMAGES = 1_000_000
MAX_IMAGE_PIXELS = 4096 * 4096
TABLE_SUFFIXES = (".csv", ".npz")
IMAGE_SUFFIXES = (".png",)


def read_table(
    path: str | os.PathLike[str],
    target: str | int | None,
    features: Sequence[str | int] | None = None,
    x_array: str = "X",
    y_array: str = "y",
) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, d) and targets (N,) as float64 from a CSV file with a header or an NPZ file.

    Args:
        target: CSV: the target column, by name or 0-based index.
        features: the feature columns (CSV: names or indices; NPZ: indices into ``x_array``'s
            columns); default every column but the target.
        x_array, y_array: NPZ: the names of the feature matrix and the target vector.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        arrays = read_npz(path, (x_array, y_array))
        x, y = table_arrays(arrays[x_array], arrays[y_array], str(path))
        if features is not None:
            columns = [_column(f, [f"column {k}" for k in range(x.shape[1])], path, "features") for f in features]
            x = x[:, columns]
        return x, y
    if path.suffix.lower() != ".csv":
        raise DataError(
            f"{path}: a regression file is {' or '.join(TABLE_SUFFIXES)}, not {path.suffix or 'suffix-less'}"
        )
    if target is None:
        raise DataError(f"{path}: name the CSV's target column (data.target)")
    text = read_text(path, error=DataError, label="CSV file", limit=MAX_CSV_BYTES, fix="save the CSV as UTF-8")
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise DataError(f"{path} is not a readable CSV file: {exc}") from None
    if len(rows) < 2:
        raise DataError(f"{path} holds {'no header' if not rows else 'a header but no rows'}; it needs both")
    names = [cell.strip() for cell in rows[0]]
    y_col = _column(target, names, path, "target")
    x_cols = [_column(f, names, path, "features") for f in features] if features is not None else None
    x_cols = x_cols if x_cols is not None else [k for k in range(len(names)) if k != y_col]
    if not x_cols or y_col in x_cols:
        raise DataError(f"{path}: the features must be at least one column other than the target {names[y_col]!r}")
    if len(rows) - 1 > MAX_ELEMENTS // len(names):
        raise DataError(f"{path} has {len(rows) - 1} rows of {len(names)} columns; at most {MAX_ELEMENTS} values")
    table = np.empty((len(rows) - 1, len(x_cols) + 1))
    for r, row in enumerate(rows[1:]):
        if len(row) != len(names):
            raise DataError(f"{path} row {r + 2} has {len(row)} columns, the header {len(names)}")
        for c, k in enumerate([*x_cols, y_col]):
            table[r, c] = _number(row[k], path, r + 2, names[k])
    return table[:, :-1], table[:, -1]


def _column(key: str | int, names: list[str], path: Path, setting: str) -> int:
    """The 0-based index of column ``key`` (a name, or an index as int) among ``names``."""
    if isinstance(key, int) and not isinstance(key, bool):
        if not 0 <= key < len(names):
            raise DataError(f"{path}: data.{setting} column {key} is out of range (the file has {len(names)} columns)")
        return key
    if key not in names:
        raise DataError(f"{path} has no column {shown(key)} (data.{setting}); its columns: {shown(names, 200)}")
    return names.index(str(key))


def _number(cell: str, path: Path, row: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"{path} row {row}, column {column!r}: {shown(cell.strip())} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{path} row {row}, column {column!r}: {cell.strip()} is not finite; fix or drop the row")
    return value


def read_npz(path: str | os.PathLike[str], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an NPZ file, each header checked (numeric dtype, at most
    `MAX_ELEMENTS` values) before its data is read; object arrays are never unpickled."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name.removesuffix(".npy") for name in archive.namelist()}
            arrays = {}
            for name in names:
                if name not in members:
                    raise DataError(f"{path} has no array {name!r}; it holds {shown(sorted(members), 200)}")
                arrays[name] = _read_member(archive, name, path)
            return arrays
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable NPZ file: {exc}") from None


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_member(archive: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    with archive.open(f"{name}.npy") as stream:
        try:
            version = np.lib.format.read_magic(stream)
            read_header = _HEADER_READERS.get(version)
            if read_header is None:
                raise ValueError(f"format version {version} is not supported")
            header = read_header(stream)
        except ValueError as exc:
            raise DataError(f"{path}: array {name!r} is not an .npy array: {exc}") from None
    shape, _, dtype = header
    if dtype.kind not in "biuf":
        raise DataError(f"{path}: array {name!r} is {dtype}; data arrays must be numeric")
    if math.prod(shape) > MAX_ELEMENTS:
        raise DataError(f"{path}: array {name!r} has shape {shape}, more than {MAX_ELEMENTS} values")
    with archive.open(f"{name}.npy") as stream:
        try:
            return np.asarray(np.lib.format.read_array(stream, allow_pickle=False))
        except (ValueError, EOFError) as exc:
            raise DataError(f"{path}: array {name!r} is cut short or corrupt: {exc}") from None


def table_arrays(x: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, d) and targets (N,) as finite float64: a vector of features is one column."""
    x, y = _numeric(x, where, "features"), _numeric(y, where, "targets")
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    if x.ndim != 2 or y.ndim != 1:
        raise DataError(f"{where}: features must be (N, d) and targets (N,), got {x.shape} and {y.shape}")
    _same_length(x, y, where)
    return x, y


def image_arrays(x: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, H, W) as float32 in the file's scale (uint8: 0..255, else as given) and integer
    labels (N,): images (N, H, W) have one channel."""
    images, labels = _numeric(x, where, "images", np.float32), _numeric(y, where, "labels")
    images = images[:, None] if images.ndim == 3 else images
    if images.ndim != 4:
        raise DataError(f"{where}: images must be (N, H, W) or (N, C, H, W), got shape {images.shape}")
    if x.dtype == np.uint8:
        images = images / np.float32(255)
    labels = labels[:, 0] if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if labels.ndim != 1 or np.any(labels != np.round(labels)):
        raise DataError(f"{where}: labels must be whole numbers of shape (N,), got shape {labels.shape}")
    _same_length(images, labels, where)
    return images, labels.astype(np.int64)


def _numeric(array: np.ndarray, where: str, what: str, dtype: type = np.float64) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{where}: the {what} are {array.dtype}, not numbers")
    values: np.ndarray = array.astype(dtype)
    bad = ~np.isfinite(values)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{where}: the {what} hold a non-finite value at index {index}; fix or drop that sample")
    return values


def _same_length(x: np.ndarray, y: np.ndarray, where: str) -> None:
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} inputs but {len(y)} targets; they must pair up")
    if len(x) == 0:
        raise DataError(f"{where} holds no samples")


def read_images(
    path: str | os.PathLike[str], x_array: str = "x", y_array: str = "y"
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """Images (N, C, H, W) in [0, 1] for uint8 data, labels (N,) and class names from an NPZ file
    (arrays ``x_array``, ``y_array``; no names) or a folder ``path/<class>/*.png`` (classes in sorted
    order are labels 0..K−1; every image the same size, grey or colour)."""
    path = Path(path)
    if path.is_dir():
        return _read_image_folder(path)
    if path.suffix.lower() != ".npz":
        raise DataError(f"{path}: labelled images are an .npz file or a folder of class folders")
    arrays = read_npz(path, (x_array, y_array))
    return (*image_arrays(arrays[x_array], arrays[y_array], str(path)), None)


def _read_image_folder(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from PIL import Image, UnidentifiedImageError  # a dependency of matplotlib

    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [(k, f) for k, c in enumerate(classes) for f in sorted((root / c).iterdir()) if f.suffix.lower() == ".png"]
    if not files:
        raise DataError(f"{root} holds no class folders of .png images (expected {root}/<class>/<image>.png)")
    if len(files) > MAX_IMAGES:
        raise DataError(f"{root} holds {len(files)} images; at most {MAX_IMAGES}")
    images, first = [], None
    for _, file in files:
        try:
            with Image.open(file) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise DataError(
                        f"{file} is {image.width}x{image.height}; images have at most {MAX_IMAGE_PIXELS} pixels"
                    )
                pixels = np.asarray(image.convert("L" if image.mode in ("1", "L", "P", "I", "I;16") else "RGB"))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            raise DataError(f"{file} is not a readable PNG image: {exc}") from None
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        first = pixels.shape if first is None else first
        if pixels.shape != first:
            raise DataError(f"{file} is {pixels.shape} (channels, height, width), the first image {first}")
        images.append(pixels)
    labels = np.array([k for k, _ in files], dtype=np.int64)
    return np.stack(images).astype(np.float32) / np.float32(255), labels, tuple(classes)

"""Reading IDX files (the MNIST / Fashion-MNIST / EMNIST format), gzip-compressed or raw."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from kirchhoffnet.errors import DataError

_DTYPES = {
    code: np.dtype(kind)
    for code, kind in {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.items()
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The array stored in an IDX file; ``.gz`` files are decompressed.

    Raises:
        DataError: missing file, bad magic number, or a payload shorter than its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file {path} not found")
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is not a readable gzip file (truncated download?): {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated inside its header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _DTYPES[data[2]]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{path} holds {len(data) - header} payload bytes but its header announces {expected} (shape {shape})"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)

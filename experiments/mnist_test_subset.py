"""Write the MNIST test subset shipped in ``data/mnist-test-subset/``: the first N images and labels of
the standard test files, as gzip IDX files under the standard names, so that a clone runs the MNIST tests
and examples without downloading anything.

    python experiments/mnist_test_subset.py PATH/TO/mnist [--count 1000] [--out data/mnist-test-subset]

PATH/TO/mnist holds ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (the files
``data.download: true`` fetches). The output is byte-for-byte reproducible (gzip without a timestamp).
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

from kirchhoffnet.data import read_idx

REPO = Path(__file__).resolve().parents[1]
FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes, the type of every MNIST file


def write_idx(path: Path, array: np.ndarray) -> None:
    """An unsigned-byte IDX file, gzip-compressed with no timestamp so that reruns give the same bytes."""
    header = bytes([0, 0, IDX_UBYTE, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes(), mtime=0))


def write_subset(source: Path, out: Path, count: int) -> None:
    """The first ``count`` records of each test file in ``source``, written under the same name in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        array = read_idx(source / name)
        if len(array) < count:
            raise SystemExit(f"{source / name} holds {len(array)} records, fewer than --count {count}")
        write_idx(out / name, array[:count])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="folder with the full MNIST test files")
    parser.add_argument("--count", type=int, default=1000, help="images (and labels) to keep, from the start")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "mnist-test-subset")
    args = parser.parse_args()
    write_subset(args.source, args.out, args.count)
    print(f"wrote the first {args.count} MNIST test images and labels to {args.out}")


if __name__ == "__main__":
    main()

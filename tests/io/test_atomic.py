"""Atomic writers: file modes like a plain open, and ``.npy`` files streamed batch by batch."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from kirchhoffnet.errors import DataError
from kirchhoffnet.io import atomic_write, save_npy_batches_atomic, write_text_atomic

from ..reliability.crash import environment


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_umask_default_mode_not_mkstemps_0600(umask, tmp_path):
    previous = os.umask(umask)
    try:
        path = write_text_atomic(tmp_path / "result.json", "{}\n")
        open(tmp_path / "plain.txt", "w").close()  # what an ordinary open gives, for comparison
    finally:
        os.umask(previous)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o666 & ~umask
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)


def test_the_mode_holds_when_the_writer_replaces_the_temporary_file(tmp_path):
    def recreate(tmp):
        tmp.unlink()
        tmp.write_bytes(b"x")

    path = atomic_write(tmp_path / "out.bin", recreate)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_current_umask()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("sizes", [[4, 4, 2], [10], [1] * 10])
def test_batches_stream_into_the_same_npy_as_numpy_save(sizes, tmp_path):
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(size, 3)) for size in sizes]  # float64 in, float32 out
    path = save_npy_batches_atomic(tmp_path / "samples.npy", (10, 3), iter(blocks))
    expected = np.concatenate(blocks).astype(np.float32)
    np.save(tmp_path / "reference.npy", expected)
    assert path.read_bytes() == (tmp_path / "reference.npy").read_bytes()


@pytest.mark.parametrize(
    ("blocks", "match"),
    [
        ([np.zeros((3, 3))], r"batches gave 3 rows but the array has 4 .*nothing was written"),
        ([np.zeros((3, 3)), np.zeros((3, 3))], r"batch of shape \(3, 3\) does not fit rows 3\.\. of an array \(4, 3\)"),
        ([np.zeros((4, 2))], r"batch of shape \(4, 2\) does not fit rows 0\.\. of an array \(4, 3\)"),
    ],
)
def test_batches_that_do_not_fill_the_array_are_refused_and_leave_nothing(blocks, match, tmp_path):
    with pytest.raises(DataError, match=match):
        save_npy_batches_atomic(tmp_path / "samples.npy", (4, 3), blocks)
    assert list(tmp_path.iterdir()) == []


def test_streaming_keeps_one_batch_in_memory(tmp_path):
    """60,000 × 784 float32 (188 MB, MNIST-sized) streamed in batches of 1,000: peak RSS of the child
    must grow by far less than the file, which an in-memory array (or a memmap's resident pages) costs."""
    rows, dim = 60_000, 784
    script = (
        "import resource, sys, numpy as np\n"
        "from kirchhoffnet.io import save_npy_batches_atomic\n"
        "def peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "before = peak()\n"
        f"blocks = (np.full((1000, {dim}), k, np.float32) for k in range({rows} // 1000))\n"
        f"save_npy_batches_atomic(sys.argv[1], ({rows}, {dim}), blocks)\n"
        "print(peak() - before)\n"
    )
    out = tmp_path / "big.npy"
    result = subprocess.run(
        [sys.executable, "-c", script, str(out)], env=environment(), capture_output=True, text=True, check=True
    )
    growth = int(result.stdout.strip())
    size = rows * dim * 4
    assert growth < size / 10, f"peak RSS grew by {growth / 2**20:.0f} MB writing a {size / 2**20:.0f} MB file"
    written = np.load(out, mmap_mode="r")
    assert written.shape == (rows, dim)
    assert written[-1, 0] == rows // 1000 - 1

"""Bad data: missing, truncated or wrong-format data set files, NaN/Inf inputs, wrong dimensions.

Every reader gets a tiny valid file of its format, which is then broken; the error must be a
:class:`DataError` (or, for tensors handed to the library, a :class:`ConfigError`) naming the file
or the tensor.
"""

from __future__ import annotations

import gzip
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.data.images import IMAGE_SETS, load_images
from kirchhoffnet.data.tabular import read_housing
from kirchhoffnet.errors import ConfigError, DataError

from ..conftest import small_circuit

N = 6  # images per tiny split


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def _write_mnist(root: Path, images: np.ndarray | None = None, labels: np.ndarray | None = None) -> None:
    images = np.zeros((N, 28, 28), np.uint8) if images is None else images
    labels = np.arange(N) % 10 if labels is None else labels
    root.mkdir(parents=True, exist_ok=True)
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(_idx(images))
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(_idx(labels))


def _write_cifar(root: Path, batch: object) -> Path:
    path = root / "cifar-10-batches-py" / "test_batch"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch))
    return path


def _write_svhn(root: Path, contents: dict[str, np.ndarray]) -> Path:
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    savemat(root / "test_32x32.mat", contents)
    return root / "test_32x32.mat"


def _good_cifar() -> dict[bytes, object]:
    return {b"data": np.zeros((N, 3072), np.uint8), b"labels": list(range(N))}


def _good_svhn() -> dict[str, np.ndarray]:
    return {"X": np.zeros((32, 32, 3, N), np.uint8), "y": np.arange(1, N + 1).reshape(-1, 1)}


def test_the_tiny_files_are_valid(tmp_path):
    """The corruptions below start from files the readers accept."""
    _write_mnist(tmp_path / "mnist")
    _write_cifar(tmp_path / "cifar", _good_cifar())
    _write_svhn(tmp_path / "svhn", _good_svhn())
    for name, root in [("mnist", "mnist"), ("cifar10", "cifar"), ("svhn", "svhn")]:
        images, labels = load_images(name, "test", tmp_path / root)
        assert images.shape == (N, *IMAGE_SETS[name].shape) and labels.shape == (N,)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "svhn"])
def test_a_missing_data_set_says_where_it_looked_and_how_to_fetch_it(name, tmp_path):
    with pytest.raises(DataError, match=rf"{name} test file .* not found in {tmp_path}; .*data.download: true"):
        load_images(name, "test", tmp_path)


IDX_DAMAGE = {
    "truncated gzip": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
    "not gzip": lambda b: b"\x89PNG\r\n\x1a\n" + b[8:],
    "bad magic": lambda b: gzip.compress(b"\x01\x02" + gzip.decompress(b)[2:]),
    "short payload": lambda b: gzip.compress(gzip.decompress(b)[:-5]),
    "header cut": lambda b: gzip.compress(gzip.decompress(b)[:6]),
}


@pytest.mark.parametrize("damage", list(IDX_DAMAGE))
def test_damaged_idx_files_are_named(damage, tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(IDX_DAMAGE[damage](path.read_bytes()))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz (is not|holds|is truncated)"):
        load_images("mnist", "test", tmp_path)


def test_idx_images_and_labels_of_different_lengths(tmp_path):
    _write_mnist(tmp_path, labels=np.arange(N + 1) % 10)
    with pytest.raises(DataError, match=rf"mnist test: {N} images but {N + 1} labels in {tmp_path}"):
        load_images("mnist", "test", tmp_path)


def test_idx_images_of_the_wrong_size(tmp_path):
    _write_mnist(tmp_path, images=np.zeros((N, 14, 14), np.uint8))
    with pytest.raises(DataError, match=r"mnist test images in .* have shape \(1, 14, 14\), expected \(1, 28, 28\)"):
        load_images("mnist", "test", tmp_path)


CIFAR_DAMAGE = {
    "truncated": lambda good: pickle.dumps(good)[:100],
    "garbage": lambda good: random.Random(500).randbytes(500),
    "no labels": lambda good: pickle.dumps({b"data": good[b"data"]}),
    "a list": lambda good: pickle.dumps([1, 2, 3]),
    "wrong image size": lambda good: pickle.dumps({b"data": np.zeros((N, 1000), np.uint8), b"labels": [0] * N}),
}


@pytest.mark.parametrize("damage", list(CIFAR_DAMAGE))
def test_damaged_cifar_batches_are_named(damage, tmp_path):
    path = _write_cifar(tmp_path, {})
    path.write_bytes(CIFAR_DAMAGE[damage](_good_cifar()))
    with pytest.raises(DataError, match=r"test_batch is not a CIFAR-10 python batch"):
        load_images("cifar10", "test", tmp_path)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return os.system, (f"touch {self.marker}",)


def test_a_cifar_batch_carrying_code_executes_nothing(tmp_path):
    marker = tmp_path / "executed"
    _write_cifar(tmp_path, {b"data": _Payload(marker), b"labels": []})
    with pytest.raises(DataError, match=r"test_batch is not a CIFAR-10 python batch .*refusing to load posix.system"):
        load_images("cifar10", "test", tmp_path)
    assert not marker.exists()


SVHN_DAMAGE = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:200]),
    "garbage": lambda path: path.write_bytes(random.Random(2000).randbytes(2000)),
    "no y": lambda path: _write_svhn(path.parent, {"X": _good_svhn()["X"]}),
    "flat X": lambda path: _write_svhn(path.parent, {"X": np.zeros((10, N)), "y": _good_svhn()["y"]}),
}


@pytest.mark.parametrize("damage", list(SVHN_DAMAGE))
def test_damaged_svhn_files_are_named(damage, tmp_path):
    path = _write_svhn(tmp_path, _good_svhn())
    SVHN_DAMAGE[damage](path)
    with pytest.raises(DataError, match=r"test_32x32.mat (is not an SVHN .mat file|images)|svhn test images in"):
        load_images("svhn", "test", tmp_path)


BOSTON_HEADER = "crim,zn,indus,chas,nox,rm,age,dis,rad,tax,ptratio,b,lstat,medv"
ROW = ",".join(["1"] * 14)
HOUSING = {
    "missing": (None, r"housing CSV .*housing.csv not found"),
    "empty": ("", r"housing.csv holds fewer than two rows"),
    "header only": (BOSTON_HEADER, r"housing.csv holds fewer than two rows"),
    "binary": ("\x00\x01\x02\xff" * 50, r"housing.csv"),
    "unknown columns": ("a,b,c\n1,2,3\n", r"housing.csv is in neither housing format"),
    "ragged row": (f"{BOSTON_HEADER}\n{ROW}\n1,2,3\n", r"housing.csv line 3 has 3 columns, the file has 14"),
    "truncated last row": (f"{BOSTON_HEADER}\n{ROW}\n{ROW[:9]}", r"housing.csv line 3 has 5 columns"),
    "nan cell": (f"{BOSTON_HEADER}\n{ROW}\n{ROW[:-1]}nan\n", r"housing.csv line 3 .*not finite"),
    "inf cell": (f"{BOSTON_HEADER}\n{ROW}\ninf{ROW[1:]}\n", r"housing.csv line 3 .*not finite"),
}


@pytest.mark.parametrize("case", list(HOUSING))
def test_bad_housing_csv_files_are_named(case, tmp_path):
    text, message = HOUSING[case]
    path = tmp_path / "housing.csv"
    if text is not None:
        path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=message):
        read_housing(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_are_refused_with_their_index(bad):
    circuit = small_circuit(num_nodes=4)
    x = torch.zeros(3, 3)
    x[1, 2] = bad
    with pytest.raises(ConfigError, match=r"inputs hold NaN or infinite values \(first at index \[1, 2\]\)"):
        kn.simulate(circuit, x)
    flow = kn.Flow(small_circuit(num_nodes=3))
    with pytest.raises(ConfigError, match=r"inputs hold NaN or infinite values"):
        flow.log_prob(torch.tensor([[0.0, bad]]))


def test_inputs_of_the_wrong_dimension_are_refused():
    circuit = small_circuit(num_nodes=4)  # 3 state nodes
    with pytest.raises(ConfigError, match=r"inputs have 4 features but the first slice has only 3 state nodes"):
        kn.simulate(circuit, torch.zeros(2, 4))
    with pytest.raises(ConfigError, match=r"inputs must be a \(batch, features\) matrix, got shape \(3,\)"):
        kn.simulate(circuit, torch.zeros(3))
    flow = kn.Flow(small_circuit(num_nodes=3))  # a 2-D flow
    with pytest.raises(ConfigError, match=r"reverse-time inputs must be \(batch, 2\), got shape \(5, 3\)"):
        flow.log_prob(torch.zeros(5, 3))
    with pytest.raises(ConfigError, match=r"inputs have 3 features but the first slice has only 2 state nodes"):
        flow.sample(torch.zeros(4, 3))

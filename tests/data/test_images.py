"""Image readers: the real Fashion-MNIST files, the shipped MNIST test subset, tiny hand-made CIFAR/SVHN files,
clear errors."""

from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from kirchhoffnet.data import images as image_data
from kirchhoffnet.data.images import IMAGE_SETS, flatten_images, load_images
from kirchhoffnet.errors import DataError
from kirchhoffnet.io._atomic import TMP_SUFFIX

from ..conftest import MNIST_SUBSET, experiment_script, write_cifar10, write_svhn

FASHION = Path(IMAGE_SETS["fashion_mnist"].default_root)


@pytest.mark.needs_dataset
def test_fashion_mnist_from_the_debian_package():
    if not (FASHION / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION}")
    images, labels = load_images("fashion_mnist", "test")
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and set(np.unique(labels)) == set(range(10))
    assert np.bincount(labels).tolist() == [1000] * 10  # the test split is balanced


def test_mnist_test_subset_shipped_in_the_repository():
    images, labels = load_images("mnist", "test", MNIST_SUBSET)
    assert images.shape == (1000, 1, 28, 28) and images.dtype == np.uint8
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # MNIST's well-known start
    assert np.bincount(labels).tolist() == [85, 126, 116, 107, 110, 87, 87, 99, 89, 94]  # data/mnist-test-subset
    assert 0.1 < (images > 127).mean() < 0.2  # ink on a dark background, not noise or a blank file
    with pytest.raises(DataError, match=r"mnist train file train-images-idx3-ubyte\.gz not found in .*subset; put"):
        load_images("mnist", "train", MNIST_SUBSET)


def test_the_subset_script_keeps_the_first_records_bit_for_bit(tmp_path):
    """experiments/mnist_test_subset.py, which wrote data/mnist-test-subset, on a hand-made full test set."""
    script = experiment_script("mnist_test_subset")
    full, subset = tmp_path / "full", tmp_path / "subset"
    full.mkdir()
    images, labels = _fake_idx_set(full, count=12)
    script.write_subset(full, subset, 5)
    got_images, got_labels = load_images("mnist", "test", subset)
    assert np.array_equal(got_images[:, 0], images[:5]) and np.array_equal(got_labels, labels[:5])
    first = (subset / "t10k-images-idx3-ubyte.gz").read_bytes()
    script.write_subset(full, subset, 5)
    assert (subset / "t10k-images-idx3-ubyte.gz").read_bytes() == first  # no timestamp: reruns are identical
    with pytest.raises(SystemExit, match=r"holds 12 records, fewer than --count 13"):
        script.write_subset(full, subset, 13)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _fake_idx_set(root: Path, count: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 28, 28)).astype(np.uint8)
    labels = np.arange(count) % 10
    for image_file, label_file in IMAGE_SETS["mnist"].files.values():
        _write_idx(root / image_file, images)
        _write_idx(root / label_file, labels)
    return images, labels


def test_idx_pair_reads_hand_made_files(tmp_path):
    images, labels = _fake_idx_set(tmp_path)
    got_images, got_labels = load_images("mnist", "train", tmp_path)
    assert np.array_equal(got_images[:, 0], images) and np.array_equal(got_labels, labels)


def test_cifar_batches_are_read_and_reshaped_channel_first(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, (4, 3072)).astype(np.uint8)
    write_cifar10(tmp_path, data, [3, 1, 4, 1], ("test_batch",))
    images, labels = load_images("cifar10", "test", tmp_path)
    assert images.shape == (4, 3, 32, 32) and labels.tolist() == [3, 1, 4, 1]
    assert images[2, 1, 0, 5] == data[2, 1024 + 5]  # row-major R, G, B planes of 32x32


def test_cifar_refuses_pickles_that_run_code(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (base / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match=r"test_batch is not a CIFAR-10 python batch .*refusing to load builtins"):
        load_images("cifar10", "test", tmp_path)


def test_svhn_mat_files_map_label_10_to_digit_0(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (32, 32, 3, 5)).astype(np.uint8)  # SVHN stores H, W, C, N
    write_svhn(tmp_path, x, np.array([10, 1, 2, 10, 9]), ("test_32x32.mat",))
    images, labels = load_images("svhn", "test", tmp_path)
    assert images.shape == (5, 3, 32, 32) and labels.tolist() == [0, 1, 2, 0, 9]
    assert images[3, 2, 4, 7] == x[4, 7, 2, 3]


@pytest.mark.parametrize(
    ("name", "file"),
    [("cifar10", "data_batch_1"), ("svhn", "train_32x32.mat"), ("mnist", "train-images-idx3-ubyte.gz")],
)
def test_missing_files_say_which_and_where(tmp_path, name, file):
    message = rf"^{name} train file {file} not found in {tmp_path}; .*set data\.download: true to fetch them from http"
    with pytest.raises(DataError, match=message):
        load_images(name, "train", tmp_path)


def test_corrupt_files_are_reported(tmp_path):
    _fake_idx_set(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is not a readable gzip file"):
        load_images("mnist", "train", tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(DataError, match=r"test_32x32\.mat is not an SVHN \.mat file"):
        load_images("svhn", "test", tmp_path)


def test_download_fetches_missing_files(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    images, _ = _fake_idx_set(mirror)
    monkeypatch.setitem(
        IMAGE_SETS, "mnist", image_data.ImageSet((1, 28, 28), IMAGE_SETS["mnist"].files, mirror.as_uri() + "/", "x")
    )
    target = tmp_path / "data"
    got, _ = load_images("mnist", "test", target, download=True)
    assert np.array_equal(got[:, 0], images)
    expected = sorted(f for files in IMAGE_SETS["mnist"].files.values() for f in files)
    assert sorted(p.name for p in target.iterdir()) == expected


def test_cifar_download_unpacks_the_archive(tmp_path, monkeypatch):
    source = tmp_path / "src" / "cifar-10-batches-py"
    source.mkdir(parents=True)
    data = np.zeros((2, 3072), dtype=np.uint8)
    for file in [*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]:
        (source / file).write_bytes(pickle.dumps({b"data": data, b"labels": [0, 1]}))
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    info = IMAGE_SETS["cifar10"]
    monkeypatch.setitem(IMAGE_SETS, "cifar10", image_data.ImageSet(info.shape, info.files, archive.as_uri(), "x"))
    images, labels = load_images("cifar10", "train", tmp_path / "data", download=True)
    assert images.shape == (10, 3, 32, 32) and labels.tolist() == [0, 1] * 5


def test_a_failed_download_is_a_data_error(tmp_path, monkeypatch):
    info = IMAGE_SETS["svhn"]
    missing = (tmp_path / "nowhere").as_uri() + "/"
    monkeypatch.setitem(IMAGE_SETS, "svhn", image_data.ImageSet(info.shape, info.files, missing, "x"))
    with pytest.raises(DataError, match=r"could not download .*train_32x32\.mat"):
        load_images("svhn", "train", tmp_path / "data", download=True)
    assert not any((tmp_path / "data").glob(f"*{TMP_SUFFIX}"))  # no half-written file left behind


def test_unknown_names_list_the_choices():
    with pytest.raises(
        DataError, match=r"unknown image data set 'imagenet'; choose one of: cifar10, emnist, emnist_byclass, fashion"
    ):
        load_images("imagenet")
    with pytest.raises(DataError, match=r"unknown split 'dev'; choose one of: test, train"):
        load_images("mnist", "dev")


def test_flatten_pools_and_scales_channel_major():
    images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(1, 2, 4, 4)
    flat = flatten_images(images, downsample=2)
    # Channel 0's top-left 2x2 block holds 0, 1, 4, 5 (mean 2.5); channel 1 starts at 16.
    np.testing.assert_allclose(flat[0], np.array([2.5, 4.5, 10.5, 12.5, 18.5, 20.5, 26.5, 28.5]) / 255.0, rtol=1e-6)
    assert flat.dtype == np.float32
    with pytest.raises(DataError, match=r"downsample 3 does not divide the 4x4 images"):
        flatten_images(images, 3)

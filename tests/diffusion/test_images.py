import gzip

import numpy as np
import pytest
import torch

from kirchhoffnet.diffusion.images import SOURCES, load_images, shrink
from kirchhoffnet.errors import DataError


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def fake_emnist(tmp_path):
    """Letters files in the EMNIST layout: labels 1..26, images stored transposed."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("test", 30)):
        images = rng.integers(0, 256, (n, 28, 28))
        images[:, 0, 5] = 255  # a mark at row 0, column 5 of the stored (transposed) image
        labels = np.tile([8, 11, 21, 1], n // 4 + 1)[:n]
        _write_idx(tmp_path / f"emnist-letters-{split}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"emnist-letters-{split}-labels-idx1-ubyte.gz", labels)
    return tmp_path


def test_shrink_averages_and_crops():
    images = np.full((3, 28, 28), 255, dtype=np.uint8)
    out = shrink(images, 12)
    assert out.shape == (3, 1, 12, 12)
    torch.testing.assert_close(out, torch.ones(3, 1, 12, 12))


def test_emnist_letters_default_to_h_k_u_and_are_transposed(fake_emnist):
    data = load_images("emnist", "train", data_dir=fake_emnist, size=28 - 4)
    assert data.names == ("H", "K", "U")
    assert sorted(data.labels.unique().tolist()) == [0, 1, 2]  # renumbered, letter A dropped
    assert len(data.images) == 45
    raw = load_images("emnist", "test", data_dir=fake_emnist, size=24)
    assert raw.images.shape[1:] == (1, 24, 24)


def test_missing_files_say_where_they_were_looked_for(tmp_path):
    with pytest.raises(
        DataError, match=r"emnist file emnist-letters-train-images-idx3-ubyte.gz not found in .*; download"
    ):
        load_images("emnist", "train", data_dir=tmp_path)
    with pytest.raises(DataError, match=r"emnist is not installed with the system; set latent\.data_dir"):
        load_images("emnist", "train")
    with pytest.raises(DataError, match="unknown image data set 'cifar'; choose one of: emnist, fashion-mnist, mnist"):
        load_images("cifar", "train")


def test_absent_classes_are_named(fake_emnist):
    with pytest.raises(DataError, match=r"emnist train split has no images of classes \[26\]"):
        load_images("emnist", "train", classes=(8, 26), data_dir=fake_emnist)


@pytest.mark.needs_dataset
def test_fashion_mnist_default_classes():
    if not (SOURCES["fashion-mnist"].default_dir / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    data = load_images("fashion-mnist", "test")
    assert data.names == ("trouser", "sandal", "bag")
    assert data.images.shape == (3000, 1, 12, 12)
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0

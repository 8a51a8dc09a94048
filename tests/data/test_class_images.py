"""EMNIST letters and byclass files and class-conditional loading: layout, transposition, class selection by
label or name, 28 → 14 → 12 shrinking, the test split."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from kirchhoffnet.data import images as image_data
from kirchhoffnet.data.class_images import load_classes, shrink
from kirchhoffnet.data.images import IMAGE_SETS, load_images
from kirchhoffnet.errors import DataError

from ..conftest import write_idx


def _write_emnist(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Letters files in the EMNIST layout: labels 1..26 (here H, K, U, A repeating), images stored transposed."""
    rng = np.random.default_rng(0)
    written = {}
    for split, n in (("train", 60), ("test", 30)):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        images[:, 0, 5] = 255  # a mark at row 0, column 5 of the stored (transposed) image
        images[:, 5, 0] = 0
        labels = np.tile([8, 11, 21, 1], n // 4 + 1)[:n]
        write_idx(root / f"emnist-letters-{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"emnist-letters-{split}-labels-idx1-ubyte.gz", labels)
        written[split] = (images, labels)
    return written


@pytest.fixture
def fake_emnist(tmp_path):
    return tmp_path, _write_emnist(tmp_path)


def test_emnist_files_are_read_upright_with_letter_labels(fake_emnist):
    root, written = fake_emnist
    images, labels = load_images("emnist", "train", root)
    stored, stored_labels = written["train"]
    assert images.shape == (60, 1, 28, 28) and images.dtype == np.uint8 and images.flags.c_contiguous
    assert np.array_equal(images[:, 0], stored.transpose(0, 2, 1))  # turned upright
    assert (images[:, 0, 5, 0] == 255).all() and (images[:, 0, 0, 5] == 0).all()
    assert np.array_equal(labels, stored_labels) and labels.dtype == np.int64  # letters keep their 1..26
    info = IMAGE_SETS["emnist"]
    assert info.labels == range(1, 27) and info.class_name(1) == "A" and info.class_name(26) == "Z"
    assert [info.class_name(c) for c in info.default_classes] == ["H", "K", "U"]


def test_class_names_of_every_set():
    assert IMAGE_SETS["fashion_mnist"].class_name(8) == "bag" and IMAGE_SETS["cifar10"].class_name(0) == "airplane"
    assert IMAGE_SETS["mnist"].class_names == tuple("0123456789") and IMAGE_SETS["svhn"].num_classes == 10
    assert IMAGE_SETS["mnist"].class_name(42) == "42"  # a label the set does not name
    assert [name for name, info in IMAGE_SETS.items() if info.test_only] == ["mnist"]
    source_tree = Path(image_data.__file__).resolve().parents[2]  # src/ of a checkout, site-packages of a wheel
    for info in IMAGE_SETS.values():  # the working directory's data/ or a system folder, never the source tree
        assert info.default_root.startswith(("data/", "/usr/share/"))
        assert not Path(info.default_root).resolve().is_relative_to(source_tree)


def test_shrink_averages_and_crops():
    images = np.full((3, 1, 28, 28), 255, dtype=np.uint8)
    out = shrink(images, 12)
    assert out.shape == (3, 1, 12, 12) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.ones(3, 1, 12, 12))
    ramp = np.tile(np.arange(28, dtype=np.uint8) * 9, (1, 1, 28, 1))  # columns 0, 9, ..., 243
    row = shrink(ramp, 12)[0, 0, 0]  # 28 → 16 by area (7/4 columns each), crop 2..13
    torch.testing.assert_close(row[0], torch.tensor((2 * 9 + 3 * 9 + 0.5 * 4 * 9) / 1.75 / 255))


def test_classes_are_selected_and_renumbered_in_the_given_order(fake_emnist):
    root, written = fake_emnist
    data = load_classes("emnist", "train", root=root, size=24)
    assert data.classes == (8, 11, 21) and data.names == ("H", "K", "U")  # the default letters
    assert data.images.shape == (45, 1, 24, 24) and len(data.labels) == 45  # letter A dropped
    picked = load_classes("emnist", "test", (21, 1), size=28 - 4, root=root, max_images=10)
    _, stored_labels = written["test"]
    expected = {21: 0, 1: 1}
    assert picked.names == ("U", "A") and picked.labels.dtype == torch.int64
    assert picked.labels.tolist() == [expected[c] for c in stored_labels if c in expected][:10]


def test_split_test_fraction_splits_the_test_file_in_order(fake_emnist):
    root, _ = fake_emnist
    (root / "emnist-letters-train-images-idx3-ubyte.gz").unlink()  # only the test files, as offline MNIST
    full = load_classes("emnist", "test", (8, 11, 21, 1), size=28 - 4, root=root)
    train = load_classes("emnist", "train", (8, 11, 21, 1), 28 - 4, root, split_test_fraction=0.2)
    test = load_classes("emnist", "test", (8, 11, 21, 1), 28 - 4, root, split_test_fraction=0.2)
    assert (len(train.labels), len(test.labels)) == (24, 6)  # the first 80 % and the last 20 % of 30
    assert torch.equal(torch.cat([train.images, test.images]), full.images)
    with pytest.raises(DataError, match=r"split_test_fraction must lie in \(0, 1\), got 1\.0"):
        load_classes("emnist", "train", root=root, split_test_fraction=1.0)
    with pytest.raises(DataError, match=r"^emnist train file emnist-letters-train-images-idx3-ubyte\.gz not found"):
        load_classes("emnist", "train", root=root)


def test_missing_files_name_the_file_the_directory_and_the_setting(tmp_path):
    with pytest.raises(
        DataError,
        match=rf"^emnist train file emnist-letters-train-images-idx3-ubyte\.gz not found in {tmp_path}; put the "
        r"standard emnist files there \(latent\.data_dir\), or download them from https://biometrics\.nist\.gov/",
    ):
        load_classes("emnist", "train", root=tmp_path, root_key="latent.data_dir", download_key=None)
    with pytest.raises(DataError, match=r"\(data\.root\), or set data\.download: true to fetch them from https://bio"):
        load_images("emnist", "test", tmp_path)
    with pytest.raises(
        DataError, match=r"unknown image data set 'fashion-mnist'; choose one of: .*, emnist, emnist_byclass, fash"
    ):
        load_classes("fashion-mnist", "train")


def test_absent_duplicate_and_unnamed_classes_are_refused(fake_emnist, tmp_path):
    root, _ = fake_emnist
    with pytest.raises(DataError, match=r"^emnist train split has no images of classes \[26\] \(labels 1\.\.21\)$"):
        load_classes("emnist", "train", classes=(8, 26), root=root)
    with pytest.raises(DataError, match=r"classes \[8, 8\] name a class twice"):
        load_classes("emnist", "train", classes=(8, 8), root=root)
    with pytest.raises(DataError, match=r"cifar10 has no default classes; name the classes to load"):
        load_classes("cifar10", "test", root=tmp_path / "nowhere")


def test_hostile_emnist_files_are_named(fake_emnist):
    root, _ = fake_emnist
    labels = root / "emnist-letters-test-labels-idx1-ubyte.gz"
    write_idx(labels, np.ones(7, dtype=np.uint8))
    with pytest.raises(DataError, match=rf"^emnist test: 30 images but 7 labels in {root}$"):
        load_classes("emnist", "test", root=root)
    labels.write_bytes(gzip.compress(b"\x00\x00\x08\x01\xff\xff\xff\xff"))  # claims 4 G labels
    with pytest.raises(DataError, match=r"emnist-letters-test-labels-idx1-ubyte\.gz (is not|holds|is truncated)"):
        load_classes("emnist", "test", root=root)
    images = root / "emnist-letters-train-images-idx3-ubyte.gz"
    write_idx(images, np.zeros((60, 28, 14)))
    with pytest.raises(DataError, match=r"emnist train images in .* have shape \(1, 14, 28\), expected \(1, 28, 28\)"):
        load_classes("emnist", "train", root=root)


def test_emnist_download_takes_the_letters_files_out_of_the_nist_zip(tmp_path, monkeypatch):
    source = tmp_path / "src"
    source.mkdir()
    written = _write_emnist(source)
    archive = tmp_path / "gzip.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in sorted(source.iterdir()):
            zipped.write(file, f"gzip/{file.name}")
        zipped.writestr("gzip/emnist-digits-train-images-idx3-ubyte.gz", b"not wanted")
    info = IMAGE_SETS["emnist"]
    monkeypatch.setitem(IMAGE_SETS, "emnist", image_data.ImageSet(**{**info.__dict__, "url": archive.as_uri()}))
    target = tmp_path / "data"
    images, _ = load_images("emnist", "test", target, download=True)
    assert np.array_equal(images[:, 0], written["test"][0].transpose(0, 2, 1))
    assert sorted(p.name for p in target.iterdir()) == sorted(["gzip.zip", *(p.name for p in source.iterdir())])
    (target / "gzip.zip").write_bytes(b"PK\x03\x04 truncated")
    (target / "emnist-letters-train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"gzip\.zip is not a readable archive \(corrupt download\?\)"):
        load_images("emnist", "train", target, download=True)


def write_emnist_byclass(root: Path, n_train: int = 80, n_test: int = 40) -> None:
    """Byclass files in the EMNIST layout: labels 0..61 (here uppercase H, lowercase h, uppercase K, U, digit 7
    repeating), images stored transposed, each image's value its label (so a selection can be checked)."""
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.tile([17, 43, 20, 30, 7], n // 5 + 1)[:n]
        images = np.broadcast_to(labels[:, None, None] * 4, (n, 28, 28)).astype(np.uint8).copy()
        images[:, 0, 5] = 255  # a mark at row 0, column 5 of the stored (transposed) image
        write_idx(root / f"emnist-byclass-{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"emnist-byclass-{split}-labels-idx1-ubyte.gz", labels)


def test_emnist_byclass_selects_uppercase_h_k_u_by_name(tmp_path):
    write_emnist_byclass(tmp_path)
    info = IMAGE_SETS["emnist_byclass"]
    assert info.num_classes == 62 and info.labels == range(62)
    assert (info.class_name(7), info.class_name(17), info.class_name(43)) == ("7", "H", "h")
    assert [info.class_name(c) for c in info.default_classes] == ["H", "K", "U"]  # uppercase, as the paper
    images, _ = load_images("emnist_byclass", "train", tmp_path)
    assert images.shape == (80, 1, 28, 28) and (images[:, 0, 5, 0] == 255).all()  # turned upright
    data = load_classes("emnist_byclass", "train", ("H", "K", "U"), size=12, pooled=14, root=tmp_path)
    assert data.classes == (17, 20, 30) and data.names == ("H", "K", "U")
    assert len(data.labels) == 48 and data.labels.tolist()[:3] == [0, 1, 2]  # lowercase h and the digit dropped
    values = {round(float(img.mean()) * 255 / 4) for img in data.images[:3]}  # the centre holds no mark
    assert values == {17, 20, 30}
    assert data.images.shape == (48, 1, 12, 12)
    with pytest.raises(DataError, match=r"unknown class 'Q!'; choose one of: 0, 1, .*, H, .*, z"):
        load_classes("emnist_byclass", "train", ("H", "Q!"), root=tmp_path)
    with pytest.raises(DataError, match=r"emnist_byclass train file emnist-byclass-train-images-idx3-ubyte\.gz not"):
        load_classes("emnist_byclass", "train", root=tmp_path / "nowhere")


def test_shrink_to_14_then_12_as_the_paper():
    ramp = np.tile(np.arange(28, dtype=np.uint8) * 9, (1, 1, 28, 1))  # columns 0, 9, ..., 243
    row = shrink(ramp, 12, pooled=14)[0, 0, 0]  # 28 → 14 by 2 × 2 means, crop columns 1..12
    expected = torch.tensor([(2 * k + 0.5) * 9 / 255 for k in range(1, 13)])
    torch.testing.assert_close(row, expected)
    with pytest.raises(DataError, match="cannot crop 12 pixels out of images averaged to 10"):
        shrink(ramp, 12, pooled=10)


@pytest.mark.needs_dataset
def test_fashion_mnist_default_classes():
    if not (Path(IMAGE_SETS["fashion_mnist"].default_root) / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    data = load_classes("fashion_mnist", "test")
    assert data.names == ("trouser", "sandal", "bag")
    assert data.images.shape == (3000, 1, 12, 12)
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0

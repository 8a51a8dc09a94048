"""Users' own data files and in-memory data: what is read, and one-line errors for hostile input."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from kirchhoffnet.data import files
from kirchhoffnet.data.files import image_arrays, read_images, read_npz, read_table, table_arrays
from kirchhoffnet.data.supplied import WHOLE, as_parts, fingerprint, split_rows
from kirchhoffnet.errors import DataError

CSV = "a,b,price,c\n1,2,10,3\n4,5,20,6\n7,8,30,9\n"


def write(path, text: str | bytes):
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def test_csv_target_by_name_or_index_and_chosen_features(tmp_path):
    path = write(tmp_path / "t.csv", CSV)
    x, y = read_table(path, "price")
    assert x.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]] and y.tolist() == [10, 20, 30]
    x, y = read_table(path, 2, ["c", 0])
    assert x.tolist() == [[3, 1], [6, 4], [9, 7]] and y.tolist() == [10, 20, 30]


def test_npz_arrays_by_name_with_chosen_columns(tmp_path):
    path = tmp_path / "t.npz"
    np.savez(path, inputs=np.arange(12.0).reshape(4, 3), out=np.arange(4))
    x, y = read_table(path, None, [2, 0], x_array="inputs", y_array="out")
    assert x.tolist() == [[2, 0], [5, 3], [8, 6], [11, 9]] and y.dtype == np.float64 and y.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("a,y\n1,2\n3,nan\n", "y", "row 3, column 'y': nan is not finite"),
        ("a,y\n1,2\nthree,4\n", "y", "row 3, column 'a': 'three' is not a number"),
        ("a,y\n1,2\n3,\n", "y", "row 3, column 'y': '' is not a number"),
        ("a,y\n1,2\n3\n", "y", "row 3 has 1 columns, the header 2"),
        ("a,y\n1,2\n", "price", "has no column 'price' (data.target)"),
        ("a,y\n1,2\n", 5, "data.target column 5 is out of range"),
        ("", "y", "holds no header"),
        ("a,y\n", "y", "a header but no rows"),
        ("y\n1\n", "y", "at least one column other than the target"),
        (b"a,y\n1,\xff\n", "y", "is not UTF-8 text (byte 6 is 0xff)"),
    ],
)
def test_hostile_csv_is_one_line_naming_file_and_place(tmp_path, text, target, message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=r"bad\.csv") as caught:
        read_table(path, target)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def _npz_with_header(path, name: str, header: dict) -> None:
    """An NPZ whose array declares ``header`` (a shape of any size) over a few bytes of data."""
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}.npy", stream.getvalue() + b"\0" * 16)


def test_hostile_npz_is_refused_before_its_data_is_read(tmp_path):
    huge = tmp_path / "huge.npz"
    _npz_with_header(huge, "X", {"descr": "<f8", "fortran_order": False, "shape": (10**9, 10**9)})
    with pytest.raises(DataError, match=r"huge.npz: array 'X' has shape \(1000000000, 1000000000\), more than"):
        read_npz(huge, ["X"])
    cut = tmp_path / "cut.npz"
    _npz_with_header(cut, "X", {"descr": "<f8", "fortran_order": False, "shape": (100, 3)})
    with pytest.raises(DataError, match=r"cut\.npz: array 'X' is cut short or corrupt"):
        read_npz(cut, ["X"])
    objects = tmp_path / "objects.npz"
    np.savez(objects, X=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="array 'X' is object; data arrays must be numeric"):
        read_npz(objects, ["X"])
    with pytest.raises(DataError, match=r"has no array 'y'; it holds \['X'\]"):
        read_npz(objects, ["y"])
    with zipfile.ZipFile(tmp_path / "garbage.npz", "w") as archive:
        archive.writestr("X.npy", b"not an npy array")
    with pytest.raises(DataError, match=r"garbage\.npz: array 'X' is not an \.npy array"):
        read_npz(tmp_path / "garbage.npz", ["X"])
    with pytest.raises(DataError, match="is not a readable NPZ file"):
        read_npz(write(tmp_path / "text.npz", "not a zip"), ["X"])
    with pytest.raises(DataError, match="not found"):
        read_npz(tmp_path / "absent.npz", ["X"])
    with pytest.raises(DataError, match=r"a regression file is \.csv or \.npz, not \.txt"):
        read_table(write(tmp_path / "t.txt", CSV), "price")


def test_array_checks_name_the_problem():
    with pytest.raises(DataError, match=r"data: the features hold a non-finite value at index \(1, 0\)"):
        table_arrays(np.array([[1.0], [np.inf]]), np.zeros(2), "data")
    with pytest.raises(DataError, match="3 inputs but 2 targets"):
        table_arrays(np.zeros((3, 2)), np.zeros(2), "data")
    with pytest.raises(DataError, match=r"features must be \(N, d\) and targets \(N,\)"):
        table_arrays(np.zeros((3, 2, 2)), np.zeros(3), "data")
    with pytest.raises(DataError, match="holds no samples"):
        table_arrays(np.zeros((0, 2)), np.zeros(0), "data")
    with pytest.raises(DataError, match="are <U1, not numbers"):
        table_arrays(np.array(["a"]), np.zeros(1), "data")
    with pytest.raises(DataError, match=r"images must be \(N, H, W\) or \(N, C, H, W\)"):
        image_arrays(np.zeros((2, 4)), np.zeros(2), "data")
    with pytest.raises(DataError, match="labels must be whole numbers"):
        image_arrays(np.zeros((2, 4, 4)), np.array([0.5, 1.0]), "data")


def test_images_from_npz_and_from_class_folders(tmp_path, monkeypatch):
    pixels = np.arange(2 * 4 * 6, dtype=np.uint8).reshape(2, 4, 6)
    np.savez(tmp_path / "i.npz", x=pixels, y=np.array([1, 0]))
    images, labels, names = read_images(tmp_path / "i.npz")
    assert images.shape == (2, 1, 4, 6) and np.allclose(images[:, 0] * 255, pixels) and labels.tolist() == [1, 0]
    assert names is None
    from PIL import Image

    for name, value in (("cat", 10), ("ant", 200)):
        (tmp_path / "folder" / name).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(np.full((3, 5), value + k, dtype=np.uint8)).save(tmp_path / "folder" / name / f"{k}.png")
    images, labels, names = read_images(tmp_path / "folder")
    assert names == ("ant", "cat") and labels.tolist() == [0, 0, 1, 1]  # classes in sorted order
    assert images.shape == (4, 1, 3, 5) and np.allclose(images[:, 0, 0, 0] * 255, [200, 201, 10, 11])
    Image.fromarray(np.zeros((3, 5, 3), dtype=np.uint8)).save(tmp_path / "folder" / "cat" / "colour.png")
    with pytest.raises(DataError, match=r"colour.png is \(3, 3, 5\) \(channels, height, width\), the first image"):
        read_images(tmp_path / "folder")
    monkeypatch.setattr(files, "MAX_IMAGE_PIXELS", 14)
    with pytest.raises(DataError, match=r"0\.png is 5x3; images have at most 14 pixels"):
        read_images(tmp_path / "folder")
    monkeypatch.undo()
    write(tmp_path / "folder" / "ant" / "broken.png", "not a png")
    with pytest.raises(DataError, match=r"broken\.png is not a readable PNG image"):
        read_images(tmp_path / "folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no class folders of \.png images"):
        read_images(tmp_path / "empty")
    with pytest.raises(DataError, match=r"an \.npz file or a folder of class folders"):
        read_images(write(tmp_path / "i.csv", CSV))


def test_in_memory_data_of_every_form_and_its_fingerprint():
    x, y = torch.arange(12.0).reshape(6, 2), torch.arange(6)
    pair = as_parts((x, y))
    assert list(pair) == [WHOLE] and pair[WHOLE][0].shape == (6, 2)
    dataset = as_parts(TensorDataset(x, y))
    assert fingerprint(dataset) == fingerprint(pair)  # the same numbers, however they are handed over
    splits = as_parts({"train": (x, y), "val": (x.numpy(), y.numpy()), "test": TensorDataset(x, y)})
    assert list(splits) == ["train", "val", "test"]
    record = fingerprint(pair)
    assert record["all.x"]["shape"] == [6, 2] and record["all.x"]["dtype"] == "float32"
    changed = fingerprint(as_parts((x + 1e-6, y)))
    assert changed["all.x"]["sha256"] != record["all.x"]["sha256"] and changed["all.y"] == record["all.y"]
    with pytest.raises(DataError, match=r"needs exactly train, val and test; got \['train'\]"):
        as_parts({"train": (x, y)})
    with pytest.raises(DataError, match=r"give \(inputs, targets\), a torch Dataset"):
        as_parts(x)
    with pytest.raises(DataError, match="the inputs must be a numeric array"):
        as_parts((["a", "b"], y))
    with pytest.raises(DataError, match="the Dataset has 0 items"):
        as_parts(TensorDataset(x[:0], y[:0]))


def test_splits_are_disjoint_seeded_and_need_samples():
    rows = split_rows(20, 0.2, 0.25, seed=3)
    assert [len(rows[k]) for k in ("train", "val", "test")] == [11, 4, 5]
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(20))
    assert all(np.array_equal(rows[k], split_rows(20, 0.2, 0.25, seed=3)[k]) for k in rows)
    assert not np.array_equal(rows["test"], split_rows(20, 0.2, 0.25, seed=4)["test"])
    with pytest.raises(DataError, match="3 samples are too few"):
        split_rows(3, 0.2, 0.25, seed=0)

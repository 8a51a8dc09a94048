"""Regression data: the synthetic and bundled sets, housing CSVs in both formats, the split."""

from __future__ import annotations

import numpy as np
import pytest

from kirchhoffnet.data.tabular import load_regression, read_housing, split_min_max, split_standardize
from kirchhoffnet.errors import DataError

BOSTON_HEADER = "crim,zn,indus,chas,nox,rm,age,dis,rad,tax,ptratio,b,lstat,medv"
BOSTON_ROWS = [
    "0.00632,18,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,396.9,4.98,24",
    "0.02731,0,7.07,0,0.469,6.421,78.9,4.9671,2,242,17.8,396.9,9.14,21.6",
    "0.02729,0,7.07,0,0.469,7.185,61.1,4.9671,2,242,17.8,392.83,4.03,34.7",
]
CALIFORNIA_HEADER = (
    "longitude,latitude,housing_median_age,total_rooms,total_bedrooms,population,households,median_income,"
    "median_house_value,ocean_proximity"
)
CALIFORNIA_ROWS = [
    "-122.23,37.88,41,880,129,322,126,8.3252,452600,NEAR BAY",
    "-122.22,37.86,21,7099,,2401,1138,8.3014,358500,NEAR BAY",  # missing total_bedrooms: dropped
    "-122.24,37.85,52,1467,190,496,177,7.2574,352100,NEAR BAY",
]


def test_friedman_and_diabetes():
    x, y = load_regression("friedman", n_samples=50, n_features=7, seed=3)
    assert x.shape == (50, 7) and y.shape == (50,)
    # Friedman #1 without noise: y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5.
    expected = 10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4]
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    x, y = load_regression("diabetes")
    assert x.shape == (442, 10) and y.shape == (442,)


@pytest.mark.parametrize(
    ("text", "features", "targets"),
    [
        ("\n".join([BOSTON_HEADER, *BOSTON_ROWS]), 13, [24.0, 21.6, 34.7]),
        ("\n".join(r.replace(",", "  ") for r in BOSTON_ROWS), 13, [24.0, 21.6, 34.7]),  # UCI housing.data
        ("\n".join([CALIFORNIA_HEADER, *CALIFORNIA_ROWS]), 8, [452600.0, 352100.0]),
        (
            "MedInc,HouseAge,AveRooms,AveBedrms,Population,AveOccup,Latitude,Longitude,MedHouseVal\n"
            "8.3252,41,6.98,1.02,322,2.55,37.88,-122.23,4.526\n8.3014,21,6.24,0.97,2401,2.11,37.86,-122.22,3.585",
            8,
            [4.526, 3.585],
        ),
        (
            "-122.23,37.88,41,880,129,322,126,8.3252,452600\n-122.22,37.86,21,7099,1106,2401,1138,8.3014,358500",
            8,
            [452600, 358500],
        ),
    ],
    ids=["boston-csv", "boston-uci", "california-csv", "california-sklearn", "california-statlib"],
)
def test_housing_formats(tmp_path, text, features, targets):
    path = tmp_path / "housing.csv"
    path.write_text(text + "\n")
    x, y = read_housing(path)
    assert x.shape == (len(targets), features)
    np.testing.assert_allclose(y, targets)


def test_housing_errors(tmp_path):
    with pytest.raises(DataError, match=r"housing CSV .*nope\.csv not found; download a Boston or California"):
        read_housing(tmp_path / "nope.csv")
    path = tmp_path / "h.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match=r"in neither housing format: expected a header with medv"):
        read_housing(path)
    path.write_text("\n".join([BOSTON_HEADER, *BOSTON_ROWS]))
    with pytest.raises(DataError, match=r"looks like boston housing data but data\.format is california"):
        read_housing(path, "california")
    path.write_text("\n".join([BOSTON_HEADER, BOSTON_ROWS[0], "1,2,3"]))
    with pytest.raises(DataError, match=r"h\.csv line 3 has 3 columns, the file has 14"):
        read_housing(path)
    with pytest.raises(DataError, match=r"housing data is read from a CSV file; give its path"):
        load_regression("housing")


def test_split_is_seeded_disjoint_and_standardised_on_train():
    x = np.random.default_rng(0).normal(3.0, 2.0, (200, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0]) + 7.0
    parts = split_standardize(x, y, 0.15, 0.2, seed=5)
    again = split_standardize(x, y, 0.15, 0.2, seed=5)
    assert all(np.array_equal(parts[k][0], again[k][0]) for k in ("train", "val", "test"))
    assert [len(parts[k][0]) for k in ("train", "val", "test")] == [130, 30, 40]
    np.testing.assert_allclose(parts["train"][0].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(parts["train"][0].std(0), 1.0, rtol=1e-12)
    mean_y, std_y = parts["scale"]
    recovered = {k: np.round(parts[k][1] * std_y + mean_y, 9) for k in ("train", "val", "test")}
    assert set(recovered["test"]) <= set(np.round(y, 9))  # the scale undoes the standardisation
    assert not set(recovered["test"]) & set(recovered["train"])  # disjoint splits (y values are distinct)
    with pytest.raises(DataError, match=r"5 samples are too few for val_fraction=0\.45"):
        split_standardize(x[:5], y[:5], 0.45, 0.45, seed=0)


def test_original_protocol_scales_like_the_original_code():
    """Friedman as the paper: 4096 × 5, 60/40, X and y min-max fitted on the training part only."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    x, y = load_regression("friedman", n_samples=4096, n_features=5, seed=42)
    parts = split_min_max(x, y, 0.4, seed=42)
    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    assert len(x_train) == 2457 and len(x_test) == 1639 and x_train.shape[1] == 5
    # The training part spans [0, 1] exactly, in every feature and in the target.
    np.testing.assert_allclose(x_train.min(0), 0.0, atol=1e-15)
    np.testing.assert_allclose(x_train.max(0), 1.0)
    assert y_train.min() == 0.0 and y_train.max() == pytest.approx(1.0)
    # Reference: scikit-learn's scaler fitted on the training rows alone (the test part is only transformed).
    raw_train, raw_test, raw_y_train, raw_y_test = train_test_split(x, y, test_size=0.4, random_state=42)
    scaler_x, scaler_y = MinMaxScaler().fit(raw_train), MinMaxScaler().fit(raw_y_train[:, None])
    np.testing.assert_allclose(x_test, scaler_x.transform(raw_test), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_test, scaler_y.transform(raw_y_test[:, None])[:, 0], rtol=1e-12, atol=1e-12)
    assert x_test.min() < 0.0 or x_test.max() > 1.0 or y_test.min() < 0.0 or y_test.max() > 1.0  # not refitted
    # The scale entry undoes the target scaling; validation is the training part (the original has none).
    low, spread = (float(v) for v in parts["scale"])
    np.testing.assert_allclose(y_test * spread + low, raw_y_test, rtol=1e-12)
    assert parts["val"][0] is x_train


def test_original_protocol_split_sizes_and_seed():
    x, y = load_regression("diabetes")
    parts = split_min_max(x, y, 0.3, seed=42)
    assert (len(parts["train"][0]), len(parts["test"][0])) == (309, 133)
    again = split_min_max(x, y, 0.3, seed=42)
    other = split_min_max(x, y, 0.3, seed=7)
    np.testing.assert_array_equal(parts["test"][1], again["test"][1])
    assert not np.array_equal(parts["test"][1], other["test"][1])
    with pytest.raises(DataError, match=r"3 samples are too few for a test share of 0.1"):
        split_min_max(x[:3], y[:3], 0.1, seed=0)


STATLIB_ROWS = "-122.23,37.88,41,880,129,322,126,8.3252,452600\n-122.22,37.86,21,7099,1106,2401,1138,8.3014,358500\n"


def test_original_housing_has_scikit_learns_features(tmp_path):
    path = tmp_path / "cal_housing.data"
    path.write_text(STATLIB_ROWS)
    x, y = load_regression("housing", path=path, protocol="original")
    # MedInc, HouseAge, AveRooms, AveBedrms, Population, AveOccup, Latitude, Longitude; value / 1e5.
    first_row = [8.3252, 41, 880 / 126, 129 / 126, 322, 322 / 126, 37.88, -122.23]
    np.testing.assert_allclose(x[0], first_row)
    np.testing.assert_allclose(y, [4.526, 3.585])
    # The common export (a header, a text column, 207 bedroom counts blanked) gives the same features; the
    # rows with a blank are dropped.
    path.write_text("\n".join([CALIFORNIA_HEADER, *CALIFORNIA_ROWS]) + "\n")
    x, y = load_regression("housing", path=path, protocol="original")
    np.testing.assert_allclose(x[0], first_row)
    np.testing.assert_allclose(y, [4.526, 3.521])
    path.write_text(
        "MedInc,HouseAge,AveRooms,AveBedrms,Population,AveOccup,Latitude,Longitude,MedHouseVal\n" + "1," * 8 + "2\n"
    )
    with pytest.raises(DataError, match=r"reads StatLib's raw California columns, longitude first"):
        load_regression("housing", path=path, protocol="original")
    path.write_text(STATLIB_ROWS.replace(",126,", ",0,"))
    with pytest.raises(DataError, match=r"a California housing row has 0 households"):
        load_regression("housing", path=path, protocol="original")


def test_housing_download_unpacks_statlibs_archive(tmp_path, monkeypatch):
    import tarfile

    import kirchhoffnet.data.tabular as tabular

    source = tmp_path / "src" / "CaliforniaHousing"
    source.mkdir(parents=True)
    (source / "cal_housing.data").write_text(STATLIB_ROWS)
    archive = tmp_path / "cal_housing.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="CaliforniaHousing")
    monkeypatch.setattr(tabular, "CALIFORNIA_URL", archive.as_uri())
    path = tmp_path / "data" / "CaliforniaHousing" / "cal_housing.data"
    with pytest.raises(DataError, match=r"housing CSV .*cal_housing\.data not found"):
        load_regression("housing", path=path)  # no download unless asked
    x, _ = load_regression("housing", path=path, download=True)
    assert x.shape == (2, 8) and path.is_file()
    elsewhere = tmp_path / "other" / "housing.csv"
    with pytest.raises(DataError, match=r"the California archive holds CaliforniaHousing/cal_housing\.data; set data"):
        load_regression("housing", path=elsewhere, download=True)

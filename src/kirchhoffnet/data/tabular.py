"""Regression data: Friedman #1 (synthetic), Diabetes (bundled with scikit-learn) and housing
prices read from a CSV file in the Boston or the California format."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from kirchhoffnet.errors import DataError, unknown_choice

REGRESSION_SETS = ("friedman", "diabetes", "housing")
HOUSING_FORMATS = ("auto", "boston", "california")
PROTOCOLS = ("standard", "original")
"""``standard``: a seeded train/validation/test split, standardised; ``original``: the KirchhoffNet
paper's code (train/test split, min-max scaling of X and y to [0, 1] fitted on the training part)."""

ORIGINAL_SEED = 42
"""The ``random_state`` of the original code's Friedman draw and of its every train/test split."""
ORIGINAL_FRIEDMAN = {"n_samples": 4096, "n_features": 5, "noise": 0.0}
"""The original's Friedman #1: ``make_friedman1(4096, n_features=5, noise=0)``."""
CALIFORNIA_URL = "https://ndownloader.figshare.com/files/5976036"
"""StatLib's California housing archive, the file scikit-learn's ``fetch_california_housing`` reads."""
CALIFORNIA_FILE = Path("CaliforniaHousing") / "cal_housing.data"
"""The standard file inside that archive: 20,640 head-less rows of 8 raw columns and the value."""
ORIGINAL_TEST_FRACTION = {"friedman": 0.4, "diabetes": 0.3, "housing": 0.3}
"""The original's test share of each set (Friedman 60/40, Diabetes and California housing 70/30)."""

# Column names of the target in the common exports of the two housing data sets.
_BOSTON_TARGET = "medv"
_CALIFORNIA_TARGETS = ("median_house_value", "medhouseval")
# Head-less files: UCI housing.data (13 features + MEDV) and StatLib cal_housing.data (8 + value).
_HEADLESS_COLUMNS = {14: "boston", 9: "california"}


def load_regression(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    housing_format: str = "auto",
    n_samples: int = 2000,
    n_features: int = 10,
    noise: float = 0.0,
    seed: int = 0,
    protocol: str = "standard",
    download: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, d) and targets (N,) as float64, unscaled.

    Args:
        name: ``friedman`` (``make_friedman1`` with ``n_samples``, ``n_features``, ``noise``,
            ``seed``), ``diabetes`` or ``housing`` (read from ``path``).
        housing_format: ``boston``, ``california`` or ``auto`` (recognised by the header or the
            column count).
        protocol: ``original``: housing is StatLib's California file with scikit-learn's 8
            features (see `california_features`), as the original code reads it.
        download: housing: fetch and unpack StatLib's archive (`CALIFORNIA_URL`) into
            ``path``'s folder when ``path`` is missing.
    """
    if name == "friedman":
        from sklearn.datasets import make_friedman1

        x, y = make_friedman1(n_samples=n_samples, n_features=n_features, noise=noise, random_state=seed)
        return x, y
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if name == "housing":
        if path is None:
            raise DataError("housing data is read from a CSV file; give its path (data.path)")
        if download and not Path(path).is_file():
            fetch_california(Path(path))
        if protocol == "original":
            return california_features(*read_housing(path, "california"))
        return read_housing(path, housing_format)
    raise DataError(unknown_choice("regression data set", name, REGRESSION_SETS))


def read_housing(path: str | os.PathLike[str], housing_format: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Features and median house values from a Boston or California housing CSV.

    Boston: a header with ``medv`` (13 features), or UCI's head-less ``housing.data`` (14
    columns, whitespace or commas). California: a header with ``median_house_value`` (the
    common export with ``ocean_proximity``, whose text column is dropped, as are rows with
    missing values) or ``MedHouseVal`` (scikit-learn's frame), or StatLib's head-less
    ``cal_housing.data`` (9 columns). The target is the named column, else the last one.
    """
    if housing_format not in HOUSING_FORMATS:
        raise DataError(unknown_choice("housing format", housing_format, HOUSING_FORMATS))
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(
            f"housing CSV {path} not found; download a Boston or California housing CSV and set data.path "
            "(or data.download: true for StatLib's California file)"
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read housing CSV {path}: {exc}") from None
    rows = [r for r in csv.reader(line.replace("\t", ",") for line in text.splitlines()) if any(c.strip() for c in r)]
    if len(rows) == 1 or (rows and "," not in text):  # whitespace-separated
        rows = [line.split() for line in text.splitlines() if line.strip()]
    if len(rows) < 2:
        raise DataError(f"housing CSV {path} holds fewer than two rows")
    header = [c.strip().strip('"').lower() for c in rows[0]]
    has_header = not _is_number(header[0])
    body = rows[1:] if has_header else rows
    if has_header:
        detected = (
            "boston" if _BOSTON_TARGET in header else "california" if set(_CALIFORNIA_TARGETS) & set(header) else None
        )
        names = header
    else:
        detected = _HEADLESS_COLUMNS.get(len(rows[0]))
        names = [f"column{k}" for k in range(len(rows[0]))]
    if detected is None:
        raise DataError(
            f"{path} is in neither housing format: expected a header with medv (Boston) or median_house_value / "
            f"MedHouseVal (California), or 14 / 9 head-less columns; found {len(names)} columns"
        )
    if housing_format != "auto" and housing_format != detected:
        raise DataError(f"{path} looks like {detected} housing data but data.format is {housing_format}")
    target = next((names.index(t) for t in (_BOSTON_TARGET, *_CALIFORNIA_TARGETS) if t in names), len(names) - 1)
    numeric = [k for k in range(len(names)) if k == target or _numeric_column(body, k)]
    table = []
    for line_no, row in enumerate(body, start=2 if has_header else 1):
        if len(row) != len(names):
            raise DataError(f"{path} line {line_no} has {len(row)} columns, the file has {len(names)}")
        cells = [row[k].strip().strip('"') for k in numeric]
        if all(cells):  # rows with missing values are dropped
            values = [float(c) for c in cells]
            if not all(math.isfinite(v) for v in values):
                raise DataError(f"{path} line {line_no} holds a value that is not finite (nan or inf); fix or drop it")
            table.append(values)
    if not table:
        raise DataError(f"{path} holds no complete numeric rows")
    data = np.asarray(table, dtype=np.float64)
    where = numeric.index(target)
    return np.delete(data, where, axis=1), data[:, where]


def fetch_california(path: Path) -> None:
    """Download StatLib's archive into the folder that holds ``path`` and unpack it there."""
    from kirchhoffnet.data.images import fetch, unpack

    folder = path.parent.parent if path.parent.name == CALIFORNIA_FILE.parent.name else path.parent
    archive = folder / "cal_housing.tar.gz"
    if not archive.is_file():
        fetch(CALIFORNIA_URL, archive)
    unpack(archive, folder, set())
    if not path.is_file():
        raise DataError(f"the California archive holds {CALIFORNIA_FILE}; set data.path to {folder / CALIFORNIA_FILE}")


def california_features(raw: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's California features from StatLib's raw columns (longitude, latitude, median
    age, total rooms, total bedrooms, population, households, median income): median income, age,
    rooms, bedrooms and occupants per household, population, latitude, longitude; the value in
    units of $100,000. The original code trains on these, not on the raw totals."""
    if raw.shape[1] != 8:
        raise DataError(f"the original protocol reads California housing (8 raw columns), this file has {raw.shape[1]}")
    if not (raw[:, 0] < 0).all():  # scikit-learn's frame (median income first) is derived already
        raise DataError(
            "the original protocol reads StatLib's raw California columns, longitude first (cal_housing.data)"
        )
    longitude, latitude, age, rooms, bedrooms, population, households, income = raw.T
    households = np.where(households == 0, np.nan, households)
    features = np.stack(
        [
            income,
            age,
            rooms / households,
            bedrooms / households,
            population,
            population / households,
            latitude,
            longitude,
        ],
        axis=1,
    )
    if not np.isfinite(features).all():
        raise DataError("a California housing row has 0 households; the per-household features are undefined")
    return features, value / 100_000.0


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _numeric_column(rows: list[list[str]], k: int) -> bool:
    """A column is numeric when every non-empty cell parses as a number (text columns are dropped)."""
    cells = (r[k].strip().strip('"') for r in rows if k < len(r))
    return all(_is_number(c) for c in cells if c)


def split_standardize(
    x: np.ndarray, y: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Seeded train/val/test split, features and target standardised with the training statistics.

    Returns:
        ``{"train": (x, y), "val": ..., "test": ..., "scale": (mean_y, std_y)}`` where the
        scale entry undoes the target standardisation (as a pair of 0-d arrays).
    """
    n = len(x)
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    if n - n_test - n_val < 2 or n_test < 1 or n_val < 1:
        raise DataError(f"{n} samples are too few for val_fraction={val_fraction} and test_fraction={test_fraction}")
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    return standardize({k: (x[idx], y[idx]) for k, idx in parts.items()})


def standardize(parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Splits ``{"train", "val", "test"}`` standardised with the training statistics, and the ``scale``
    entry (mean and std of the training targets) that undoes the target's standardisation."""
    x_train, y_train = parts["train"]
    if len(x_train) < 2:
        raise DataError(f"the training split holds {len(x_train)} sample; at least 2 are needed")
    mean_x, std_x = x_train.mean(0), x_train.std(0)
    std_x[std_x == 0] = 1.0  # a constant feature stays 0 instead of becoming NaN
    mean_y, std_y = y_train.mean(), y_train.std() or 1.0
    out = {k: ((x - mean_x) / std_x, (y - mean_y) / std_y) for k, (x, y) in parts.items()}
    out["scale"] = (np.asarray(mean_y), np.asarray(std_y))
    return out


def split_min_max(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The original protocol: scikit-learn's ``train_test_split`` (so seed 42 gives the original's
    very split), then X and y min-max scaled to [0, 1] with the training part's range.

    The original keeps no validation set and monitors its training loss, so ``val`` is the training
    part itself: the whole training part is trained on, and the test part is never looked at before
    the end.

    Returns:
        ``{"train": (x, y), "val": (x, y) of train, "test": ..., "scale": (min_y, range_y)}`` where
        the scale entry undoes the target scaling, ``y = y_scaled · range_y + min_y``.
    """
    from sklearn.model_selection import train_test_split

    if len(x) * test_fraction < 1 or len(x) * (1 - test_fraction) < 2:
        raise DataError(f"{len(x)} samples are too few for a test share of {test_fraction}")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed)
    low_x, range_x = x_train.min(0), np.ptp(x_train, axis=0)
    range_x[range_x == 0] = 1.0  # a constant feature stays 0 instead of becoming NaN
    low_y, range_y = y_train.min(), np.ptp(y_train) or 1.0
    train = ((x_train - low_x) / range_x, (y_train - low_y) / range_y)
    return {
        "train": train,
        "val": train,
        "test": ((x_test - low_x) / range_x, (y_test - low_y) / range_y),
        "scale": (np.asarray(low_y), np.asarray(range_y)),
    }

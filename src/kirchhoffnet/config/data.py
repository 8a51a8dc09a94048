"""The data sections of regression and classification configs: a named set, the user's own file, or the
arrays handed to ``kn.train(config, data=...)`` (``source: memory``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from kirchhoffnet.config.circuit import SEED_MAX, Section
from kirchhoffnet.data.images import IMAGE_SETS
from kirchhoffnet.data.tabular import HOUSING_FORMATS, ORIGINAL_FRIEDMAN, ORIGINAL_SEED, PROTOCOLS


def check_source_fields(data: Section, named_only: tuple[str, ...], own_only: tuple[str, ...]) -> None:
    """A setting of one source given for another is refused, not silently ignored (a default value is not
    "given": a run's saved config.yaml spells every default out)."""
    source = getattr(data, "source")  # noqa: B009 (every data section with a source has this field)
    misplaced = named_only if source != "named" else own_only
    given = [key for key in misplaced if getattr(data, key) != type(data).model_fields[key].default]
    if given:
        raise ValueError(f"{given[0]}: does not apply to data.source {source}; remove it")
    name, path = getattr(data, "name"), getattr(data, "path")  # noqa: B009
    if source == "named" and name is None:
        raise ValueError("name: required for a named data set (or set data.source: file with data.path)")
    if source != "named" and name is not None:
        raise ValueError(f"name: a {source} source has no name; remove it (or set data.source: named)")
    if source == "file" and path is None:
        raise ValueError("path: data.source file reads data.path; set it")
    if source == "memory" and path is not None:
        raise ValueError("path: data.source memory takes its data from kn.train(config, data=...), not a file")


class RegressionData(Section):
    """A tabular regression set, standardised with training statistics and split with a seed."""

    source: Literal["named", "file", "memory"] = Field(
        "named", description="named (data.name), file (data.path: .csv or .npz) or memory (kn.train's data=)."
    )
    name: Literal["friedman", "diabetes", "housing"] | None = Field(None, description="named: the data set.")
    protocol: Literal["standard", "original"] = Field(
        "standard",
        description=f"named: {' or '.join(PROTOCOLS)}: a train/val/test split with standardised X and y, or the "
        "original paper's: its sizes and train/test split, X and y min-max scaled to [0, 1], MSE on that target.",
    )
    download: bool = Field(False, description="housing: fetch StatLib's California archive into data.path's folder.")
    path: str | None = Field(
        None, description="housing: the CSV file; file: a .csv with a header or an .npz (relative to the config)."
    )
    target: str | int | None = Field(None, description="file, CSV: the target column (name or 0-based index).")
    features: list[str | int] | None = Field(
        None, min_length=1, description="file: feature columns (CSV: names or indices; NPZ: indices); default all."
    )
    x_array: str = Field("X", description="file, NPZ: the array of features (N, d).")
    y_array: str = Field("y", description="file, NPZ: the array of targets (N,).")
    format: Literal["auto", "boston", "california"] = Field(
        "auto", description=f"housing: CSV format ({', '.join(HOUSING_FORMATS)})."
    )
    n_samples: int = Field(2000, ge=10, description="friedman: number of samples.")
    n_features: int = Field(10, ge=5, description="friedman: features (5 informative).")
    noise: float = Field(0.0, ge=0, description="friedman: Gaussian noise on the target.")
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of samples for validation.")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="Share of samples for the test MSE.")
    seed: int = Field(
        0, ge=0, le=SEED_MAX, description=f"Seed of the split (and of friedman's draw); original: {ORIGINAL_SEED}."
    )

    @model_validator(mode="after")
    def _source(self) -> RegressionData:
        check_source_fields(
            self,
            ("format", "n_samples", "n_features", "noise", "protocol", "download"),
            ("target", "features", "x_array", "y_array"),
        )
        if self.download and self.name != "housing":
            raise ValueError(f"download: only housing is downloaded, {self.name} is generated or bundled")
        if self.name == "housing" and self.path is None:
            raise ValueError("path: housing data is read from a CSV file; set data.path")
        if self.name not in (None, "housing") and self.path is not None:
            raise ValueError(f"path: only housing is read from a file, {self.name} is not")
        if self.source == "file" and self.path is not None:
            suffix = self.path.rsplit(".", 1)[-1].lower() if "." in self.path else ""
            if suffix not in ("csv", "npz"):
                raise ValueError(f"path: a regression file is .csv or .npz, got {self.path!r}")
            if suffix == "csv" and self.target is None:
                raise ValueError("target: name the CSV's target column (its header name or 0-based index)")
        return self

    @model_validator(mode="after")
    def _original_fixes_the_sizes(self) -> RegressionData:
        if self.protocol != "original":
            return self
        # A resolved config (a run's config.yaml) spells every value out: only a different one is refused.
        unused = {key: type(self).model_fields[key].default for key in ("val_fraction", "test_fraction")}
        fixed = ORIGINAL_FRIEDMAN if self.name == "friedman" else {}
        for key, value in {**unused, **fixed}.items():
            if key in self.model_fields_set and getattr(self, key) != value:
                raise ValueError(
                    f"{key}: the original protocol fixes the sizes and split; remove it or use protocol: standard"
                )
            setattr(self, key, value)
        if "seed" not in self.model_fields_set:
            self.seed = ORIGINAL_SEED
        return self

    @property
    def label(self) -> str:
        """What reports call the data: the set's name or the source."""
        return self.name or f"{self.source} data"

    @property
    def num_features(self) -> int | None:
        """Input dimension when it is known without reading a file."""
        return {"friedman": self.n_features, "diabetes": 10}.get(self.name or "")


class ImageData(Section):
    """An image data set read from its standard files."""

    name: Literal["fashion_mnist", "mnist", "cifar10", "svhn"] = Field(description="Data set.")
    root: str | None = Field(None, description="Directory with the standard files; default the usual place.")
    download: bool = Field(False, description="Fetch missing files from the data set's home.")
    downsample: int = Field(1, ge=1, description="Average-pool images by this factor (2: 28x28 -> 14x14).")
    train_subset: int | None = Field(None, ge=1, description="Use only the first N training images.")
    test_subset: int | None = Field(None, ge=1, description="Use only the first N test images.")
    val_size: int = Field(5000, ge=1, description="Training images held out for validation.")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed of the validation split.")

    @model_validator(mode="after")
    def _divisible(self) -> ImageData:
        if self.name is None:  # a user's images (ClassifyData): checked once read
            return self
        _, height, width = IMAGE_SETS[self.name].shape
        if height % self.downsample or width % self.downsample:
            raise ValueError(f"downsample: {self.downsample} does not divide {self.name}'s {height}x{width} images")
        return self

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) after downsampling."""
        c, h, w = IMAGE_SETS[self.name].shape
        return c, h // self.downsample, w // self.downsample


class Augment(Section):
    """Random rotation and translation of training images (the original code's MNIST recipe: 15 degrees, 0.1)."""

    rotate_deg: float = Field(0.0, ge=0, le=180, description="Angle drawn uniformly in ±rotate_deg degrees.")
    translate: float = Field(
        0.0, ge=0, lt=0.5, description="Shift drawn uniformly in ±translate of the width and height, whole pixels."
    )


class ClassifyData(ImageData):
    """Labelled images: a named set, the user's file (``source: file``) or kn.train's arrays (``memory``)."""

    source: Literal["named", "file", "memory"] = Field(
        "named", description="named (data.name), file (data.path: .npz or a folder of class folders) or memory."
    )
    name: Literal["fashion_mnist", "mnist", "cifar10", "svhn"] | None = Field(  # type: ignore[assignment]
        None, description="named: the data set."
    )
    path: str | None = Field(None, description="file: an .npz (images x, labels y) or a folder <class>/*.png.")
    x_array: str = Field("x", description="file, NPZ: the images (N, H, W) or (N, C, H, W), uint8 or float.")
    y_array: str = Field("y", description="file, NPZ: the labels (N,), 0..K-1 for a readout of K logits.")
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="file, memory: share of samples for validation.")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="file, memory: share of samples for the test.")
    augment: Augment | None = Field(
        None, description="Training batches only: random rotation/translation, drawn from the run's generator."
    )

    @model_validator(mode="after")
    def _source(self) -> ClassifyData:
        named_only = ("root", "download", "train_subset", "test_subset", "val_size")
        check_source_fields(self, named_only, ("x_array", "y_array", "val_fraction", "test_fraction"))
        return self

    @property
    def label(self) -> str:
        """What reports call the data: the set's name or the source."""
        return self.name or f"{self.source} data"

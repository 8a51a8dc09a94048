"""Image classification with a circuit (pixels as initial voltages, logits read off hidden nodes) or an ODE-Net
baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kirchhoffnet.config import ClassifyConfig
from kirchhoffnet.config.circuit import readout_outputs
from kirchhoffnet.config.tasks import check_image_topology
from kirchhoffnet.data.augment import augment_images
from kirchhoffnet.data.files import image_arrays, read_images
from kirchhoffnet.data.images import IMAGE_SETS, flatten_images, load_images
from kirchhoffnet.data.seeds import split_seed
from kirchhoffnet.data.supplied import WHOLE, split_rows
from kirchhoffnet.errors import ConfigError, DataError
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.models.baselines import Baseline, ODENet
from kirchhoffnet.tasks.base import NetworkTask
from kirchhoffnet.tasks.plots import confusion_matrix


class ClassifyTask(NetworkTask):
    """Cross-entropy training; test accuracy (top-1, top-5), loss and a confusion matrix at the end."""

    primary = "accuracy"
    higher_is_better = True
    config: ClassifyConfig
    image_shape: tuple[int, int, int]  # (channels, height, width) of the flattened rows the circuit reads

    def prepare(self) -> None:
        data = self.config.data
        if data.source != "named":
            self._prepare_own()
            return
        images, labels = load_images(str(data.name), "train", data.root, data.download)
        if data.train_subset is not None:
            images, labels = images[: data.train_subset], labels[: data.train_subset]
        if data.val_size >= len(images):
            raise DataError(f"data.val_size {data.val_size} leaves no training images out of {len(images)}")
        order = np.random.default_rng(split_seed(data.seed, "val")).permutation(len(images))
        val, train = order[: data.val_size], order[data.val_size :]
        x = flatten_images(images, data.downsample)
        self.image_shape = data.shape
        self.train_data = (self.tensor(x[train]), torch.as_tensor(labels[train], device=self.device))
        self.val_xy = (self.tensor(x[val]), torch.as_tensor(labels[val], device=self.device))

    def _prepare_own(self) -> None:
        """A user's images (file or memory): split with the seed table unless given split, checked
        against the circuit (shape) and the readout (labels 0..K−1), kept flat in [0, 1]."""
        data = self.config.data
        given = self.own_data(
            lambda: {WHOLE: read_images(str(data.path), data.x_array, data.y_array)[:2]}, image_arrays
        )
        if WHOLE in given:
            images, labels = given[WHOLE]
            rows = split_rows(len(images), data.val_fraction, data.test_fraction, data.seed)
            given = {split: (images[k], labels[k]) for split, k in rows.items()}
        where = data.path or "data"
        shapes = {x.shape[1:] for x, _ in given.values()}
        if len(shapes) > 1:
            raise DataError(f"{where}: the splits hold images of different shapes {sorted(shapes)}")
        c, h, w = shapes.pop()
        if h % data.downsample or w % data.downsample:
            raise ConfigError(f"data.downsample: {data.downsample} does not divide the {h}x{w} images of {where}")
        assert self.config.circuit is not None  # a baseline trains on named sets only (the config checks)
        try:
            check_image_topology(
                self.config.circuit, (c, h // data.downsample, w // data.downsample), where, data.downsample
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for split, (_, y) in given.items():
            outside = (y < 0) | (y >= self.num_classes)
            if outside.any():
                k = int(np.argmax(outside))
                raise DataError(
                    f"{where}: {split} label {y[k]} (sample {k}) is outside 0..{self.num_classes - 1}; the readout "
                    f"gives {self.num_classes} logits, one per class"
                )
        self.image_shape = (c, h // data.downsample, w // data.downsample)
        flat = {
            split: (self.tensor(flatten_images(x, data.downsample, 1.0)), torch.as_tensor(y, device=self.device))
            for split, (x, y) in given.items()
        }
        self.train_data, self.val_xy, self.own_test = flat["train"], flat["val"], flat["test"]

    @property
    def num_classes(self) -> int:
        """Classes: the named set's, or the readout's logits for the user's own data."""
        name = self.config.data.name
        return IMAGE_SETS[name].num_classes if name is not None else int(readout_outputs(self.config.readout) or 0)

    def build_baseline(self) -> Baseline:
        solver = self.config.solver
        return ODENet(**self.baseline_settings()[1], solver=solver.build(), gradient=solver.build_gradient())

    def baseline_settings(self) -> tuple[type[Baseline], dict[str, Any]]:
        baseline = self.config.baseline
        assert baseline is not None  # asked of baseline runs only
        c, h, w = self.config.data.shape  # a baseline trains on a named set (the config checks)
        settings = {"image_channels": c, "height": h, "width": w, "classes": self.num_classes}
        return ODENet, settings | baseline.model_dump()

    def test_data(self) -> tuple[Tensor, Tensor]:
        data = self.config.data
        if data.source != "named":
            return self.own_test
        images, labels = load_images(str(data.name), "test", data.root, data.download)
        if data.test_subset is not None:
            images, labels = images[: data.test_subset], labels[: data.test_subset]
        return self.tensor(flatten_images(images, data.downsample)), torch.as_tensor(labels, device=self.device)

    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        x, y = batch
        augment = self.config.data.augment
        if augment is not None:
            x = augment_images(x, self.image_shape, augment.rotate_deg, augment.translate, generator)
        return F.cross_entropy(model(x), y)

    def _scores(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[dict[str, float], Tensor]:
        logits = self.predict(model, x)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        metrics = {
            "loss": float(F.cross_entropy(logits, y)),
            "accuracy": float((top5[:, 0] == y).float().mean()),
            "top5_accuracy": float((top5 == y[:, None]).any(dim=1).float().mean()),
        }
        return metrics, top5[:, 0]

    def validate(self, model: nn.Module) -> dict[str, float]:
        return self._scores(model, *self.val_xy)[0]

    def evaluate(self, model: nn.Module, out_dir: Path, progress: bool = False) -> dict[str, Any]:
        x, y = self.test_data()
        metrics, predicted = self._scores(model, x, y)
        classes = self.num_classes
        counts = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(counts, (y.cpu().numpy(), predicted.cpu().numpy()), 1)
        title = f"{self.config.data.label}: test accuracy {100 * metrics['accuracy']:.2f} %"
        save_figure(confusion_matrix(counts, title), out_dir / "confusion_matrix.png")
        return {
            "dataset": self.config.data.label,
            **metrics,
            "num_test": len(y),
            "confusion_matrix": counts.tolist(),
        }

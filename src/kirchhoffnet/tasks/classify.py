"""Image classification with a circuit: pixels as initial voltages, logits read off hidden nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kirchhoffnet.config import ClassifyConfig
from kirchhoffnet.data.images import IMAGE_SETS, flatten_images, load_images
from kirchhoffnet.data.seeds import split_seed
from kirchhoffnet.errors import DataError
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.tasks.base import NetworkTask
from kirchhoffnet.tasks.plots import confusion_matrix


class ClassifyTask(NetworkTask):
    """Cross-entropy training; test accuracy (top-1, top-5), loss and a confusion matrix at the end."""

    primary = "accuracy"
    higher_is_better = True
    config: ClassifyConfig

    def prepare(self) -> None:
        data = self.config.data
        images, labels = load_images(data.name, "train", data.root, data.download)
        if data.train_subset is not None:
            images, labels = images[: data.train_subset], labels[: data.train_subset]
        if data.val_size >= len(images):
            raise DataError(f"data.val_size {data.val_size} leaves no training images out of {len(images)}")
        order = np.random.default_rng(split_seed(data.seed, "val")).permutation(len(images))
        val, train = order[: data.val_size], order[data.val_size :]
        x = flatten_images(images, data.downsample)
        self.train_data = (self.tensor(x[train]), torch.as_tensor(labels[train], device=self.device))
        self.val_xy = (self.tensor(x[val]), torch.as_tensor(labels[val], device=self.device))

    def test_data(self) -> tuple[Tensor, Tensor]:
        data = self.config.data
        images, labels = load_images(data.name, "test", data.root, data.download)
        if data.test_subset is not None:
            images, labels = images[: data.test_subset], labels[: data.test_subset]
        return self.tensor(flatten_images(images, data.downsample)), torch.as_tensor(labels, device=self.device)

    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        x, y = batch
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
        classes = IMAGE_SETS[self.config.data.name].num_classes
        counts = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(counts, (y.cpu().numpy(), predicted.cpu().numpy()), 1)
        title = f"{self.config.data.name}: test accuracy {100 * metrics['accuracy']:.2f} %"
        save_figure(confusion_matrix(counts, title), out_dir / "confusion_matrix.png")
        return {
            "dataset": self.config.data.name,
            **metrics,
            "num_test": len(y),
            "confusion_matrix": counts.tolist(),
        }

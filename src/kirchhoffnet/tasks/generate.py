"""Image generation: a flow over whole images (784-d for MNIST), exact log-density via the
circuit's analytic O(E) trace; reported in bits per dimension.

Pixels p ∈ {0..255} are dequantised to x = (p + u)/256 with u ~ U(0, 1)^D, so that
−log₂ P(p) ≤ E_u[−log₂ p(x)] + 8·D and bits/dim = −log p(x) / (D ln 2) + 8.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kirchhoffnet.config import MnistGenConfig
from kirchhoffnet.data.images import flatten_images, load_images
from kirchhoffnet.data.seeds import split_seed
from kirchhoffnet.errors import DataError
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.tasks.base import FlowTask, batched
from kirchhoffnet.tasks.plots import image_grid

_LEVELS = 256


class MnistGenTask(FlowTask):
    """Maximum likelihood on dequantised pixels; test bits/dim and a sample grid at the end."""

    primary = "bits_per_dim"
    config: MnistGenConfig

    def _pixels(self, split: str) -> np.ndarray:
        data = self.config.data
        images, labels = load_images(data.name, split, data.root, data.download)
        if data.digits is not None:
            images = images[np.isin(labels, data.digits)]
        return np.rint(flatten_images(images, data.downsample) * 255.0).astype(np.float32)

    def prepare(self) -> None:
        data = self.config.data
        pixels = self._pixels(data.split)
        if data.split == "test":  # offline MNIST has only its test split: hold part of it out
            order = np.random.default_rng(split_seed(data.seed, "test")).permutation(len(pixels))
            held = round(len(pixels) * data.test_fraction)
            self.test_pixels, pixels = pixels[order[:held]], pixels[order[held:]]
        else:
            self.test_pixels = self._pixels("test")
        if data.train_subset is not None:
            pixels = pixels[: data.train_subset]
        if data.test_subset is not None:
            self.test_pixels = self.test_pixels[: data.test_subset]
        if data.val_size >= len(pixels) or len(self.test_pixels) == 0:
            raise DataError(
                f"{len(pixels)} training and {len(self.test_pixels)} test images are too few for val_size "
                f"{data.val_size}; lower data.val_size or select more digits"
            )
        order = np.random.default_rng(split_seed(data.seed, "val")).permutation(len(pixels))
        self.val_pixels = self.tensor(pixels[order[: data.val_size]])
        self.train_data = (self.tensor(pixels[order[data.val_size :]]),)
        self.dim = pixels.shape[1]

    def _bits_per_dim(self, model: nn.Module, pixels: Tensor, generator: torch.Generator) -> Tensor:
        noise = torch.rand(pixels.shape, generator=generator, dtype=self.dtype).to(self.device)
        log_p = model((pixels + noise) / _LEVELS)
        return -log_p / (self.dim * math.log(2.0)) + math.log2(_LEVELS)

    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        return self._bits_per_dim(model, batch, generator).mean()

    def _evaluate_bits(self, model: nn.Module, pixels: Tensor, split: str) -> Tensor:
        generator = torch.Generator().manual_seed(split_seed(self.config.seed, split))
        with torch.no_grad():
            return batched(lambda p: self._bits_per_dim(model, p, generator), pixels, self.eval_batch)

    def validate(self, model: nn.Module) -> dict[str, float]:
        return {"loss": float(self._evaluate_bits(model, self.val_pixels, "val").mean())}

    def evaluate(self, model: nn.Module, out_dir: Path, progress: bool = False) -> dict[str, Any]:
        bits = self._evaluate_bits(model, self.tensor(self.test_pixels), "test")
        generator = torch.Generator().manual_seed(split_seed(self.config.seed, "noise"))
        images = self.draw(model, self.config.grid**2, generator).clamp(0, 1).numpy()
        self._grid(images, out_dir, f"{self.config.data.name}: model samples")
        return {
            "dataset": self.config.data.name,
            "digits": self.config.data.digits,
            "bits_per_dim": float(bits.mean()),
            "bits_per_dim_stderr": float(bits.std() / math.sqrt(len(bits))),
            "num_test": len(bits),
            "dim": self.dim,
        }

    def _grid(self, images: np.ndarray, out_dir: Path, title: str) -> None:
        save_figure(image_grid(images.reshape(len(images), *self.config.data.shape), title), out_dir / "samples.png")

    def sampling_refusal(self) -> None:
        return None

    def sample(self, model: nn.Module, n: int, generator: torch.Generator, out_dir: Path) -> dict[str, Any]:
        keep = self.config.grid**2
        path, shown = self.write_samples(model, n, generator, out_dir, keep, transform=lambda x: x.clamp(0, 1))
        self._grid(shown, out_dir, f"{self.config.data.name}: {len(shown)} of {n} model samples")
        return {"samples": str(path), "plot": str(out_dir / "samples.png")}

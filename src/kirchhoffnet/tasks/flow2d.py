"""2-D generation: a continuous normalizing flow fitted to a toy distribution by maximum likelihood."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet.config import Flow2dConfig
from kirchhoffnet.data import sample_toy
from kirchhoffnet.data.seeds import split_seed
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.models import Flow
from kirchhoffnet.tasks.base import FlowTask, batched
from kirchhoffnet.tasks.evaluate import flow_2d_metrics
from kirchhoffnet.tasks.plots import SCATTER_POINTS, samples_vs_data


class Flow2dTask(FlowTask):
    """NLL training on a fixed training set; held-out NLL in nats, samples and density map at the end."""

    primary = "nll_nats"
    config: Flow2dConfig

    def prepare(self) -> None:
        data = self.config.data
        self.train_data = (self.tensor(sample_toy(data.name, data.train_size, split_seed(data.seed, "train"))),)
        self.val_x = self.tensor(sample_toy(data.name, data.val_size, split_seed(data.seed, "val")))

    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        return -model(batch).mean()  # Flow.forward is log p(x)

    def validate(self, model: nn.Module) -> dict[str, float]:
        with torch.no_grad():
            return {"loss": float(-batched(model, self.val_x, self.eval_batch).mean())}

    def test_data(self) -> tuple[Tensor, None]:
        data = self.config.data
        return self.tensor(sample_toy(data.name, data.test_size, split_seed(data.seed, "test"))), None

    def evaluate(self, model: nn.Module, out_dir: Path, progress: bool = False) -> dict[str, Any]:
        data = self.config.data
        flow: Flow = model  # type: ignore[assignment]
        metrics = flow_2d_metrics(
            flow,
            self.test_data()[0],
            out_dir / "samples.png",
            data.name,
            seed=split_seed(self.config.seed, "noise"),
            batch=self.eval_batch,
            grid=self.config.grid,
            progress=progress,
        )
        return {"dataset": data.name, **metrics}

    def sampling_refusal(self) -> None:
        return None

    def sample(self, model: nn.Module, n: int, generator: torch.Generator, out_dir: Path) -> dict[str, Any]:
        path, shown = self.write_samples(model, n, generator, out_dir, SCATTER_POINTS)
        data = sample_toy(self.config.data.name, len(shown), split_seed(self.config.data.seed, "test"))
        figure = samples_vs_data(data, shown, None, f"{self.config.data.name}: {n} samples")
        save_figure(figure, out_dir / "samples.png")
        return {"samples": str(path), "plot": str(out_dir / "samples.png")}

"""Density matching: a flow q fitted to an unnormalised target p ∝ exp(−U) by reverse KL.

The loss is E_q[log q(x) + U(x)] over samples of the flow, which equals KL(q ‖ p) − log Z; the
normaliser Z of the 2-D target is integrated on a grid once, so the reported KL is absolute.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet.config import DensityConfig
from kirchhoffnet.data.potentials import log_normalizer, potential
from kirchhoffnet.data.seeds import split_seed
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.models import Flow
from kirchhoffnet.tasks.base import FlowTask, batched
from kirchhoffnet.tasks.plots import SCATTER_POINTS, density_maps


class DensityTask(FlowTask):
    """Reverse-KL training from fresh base samples; KL estimate and heat maps at the end."""

    primary = "kl_nats"
    config: DensityConfig

    def prepare(self) -> None:
        self.energy = potential(self.config.potential)
        self.log_z = log_normalizer(self.config.potential)

    def _kl_terms(self, model: nn.Module, z: Tensor) -> Tensor:
        """log q(x) + U(x) + log Z per base point z: a one-sample estimate of KL(q ‖ p) each."""
        flow: Flow = model  # type: ignore[assignment]
        x, log_q = flow.sample_with_log_prob(z)
        return log_q + self.energy(x) + self.log_z

    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        z = torch.randn(self.run_config.train.batch_size, 2, generator=generator, dtype=self.dtype)
        return self._kl_terms(model, z.to(self.device)).mean()

    def _base(self, n: int, split: str) -> Tensor:
        generator = torch.Generator().manual_seed(split_seed(self.config.seed, split))
        return torch.randn(n, 2, generator=generator, dtype=self.dtype).to(self.device)

    def validate(self, model: nn.Module) -> dict[str, float]:
        with torch.no_grad():
            z = self._base(self.config.val_samples, "val")
            kl = batched(lambda b: self._kl_terms(model, b), z, self.eval_batch)
        return {"loss": float(kl.mean())}

    def evaluate(self, model: nn.Module, out_dir: Path, progress: bool = False) -> dict[str, Any]:
        flow: Flow = model  # type: ignore[assignment]
        z = self._base(self.config.test_samples, "test")
        samples: list[Tensor] = []

        def terms(b: Tensor) -> Tensor:
            x, log_q = flow.sample_with_log_prob(b)
            samples.append(x.cpu())
            return log_q + self.energy(x) + self.log_z

        with torch.no_grad():
            kl = batched(terms, z, self.eval_batch, "KL estimate", progress).cpu()
            extent, size = self.config.extent, self.config.grid
            axis = torch.linspace(-extent, extent, size, dtype=self.dtype)
            yy, xx = torch.meshgrid(axis, axis, indexing="ij")  # rows are y, as imshow draws them
            points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
            target = torch.exp(-self.energy(points) - self.log_z).reshape(size, size)
            model_density = batched(lambda p: flow.log_prob(p.to(self.device)).cpu(), points, self.eval_batch)
        kl_mean = float(kl.mean())
        figure = density_maps(
            extent,
            [("target exp(-U)/Z", target.numpy()), ("model q", model_density.exp().reshape(size, size).numpy())],
            torch.cat(samples).numpy(),
            f"{self.config.potential}: KL(q || p) = {kl_mean:.3f} nats",
        )
        save_figure(figure, out_dir / "density.png")
        return {
            "potential": self.config.potential,
            "kl_nats": kl_mean,
            "kl_stderr": float(kl.std() / math.sqrt(len(kl))),
            "log_normalizer": self.log_z,
            "num_test_samples": len(kl),
        }

    def sampling_refusal(self) -> None:
        return None

    def sample(self, model: nn.Module, n: int, generator: torch.Generator, out_dir: Path) -> dict[str, Any]:
        path, shown = self.write_samples(model, n, generator, out_dir, SCATTER_POINTS)
        title = f"{self.config.potential}: {n} samples" + (f" (first {len(shown)} shown)" if len(shown) < n else "")
        save_figure(density_maps(self.config.extent, [], shown, title), out_dir / "samples.png")
        return {"samples": str(path), "plot": str(out_dir / "samples.png")}

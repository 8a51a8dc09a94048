"""Score-based diffusion as a task of the shared trainer: denoising score matching of a crossbar score
network or a KirchhoffNet score circuit ([`kirchhoffnet.diffusion`][kirchhoffnet.diffusion]).

The trainer brings what every task gets (resume, periodic atomic checkpoints, the NaN policy, DDP,
the memory pre-flight); the task brings the data, the loss and a final evaluation: the KL of the
probability-flow samples for the 2-D tasks, the judge's accuracy on generated images for the latent
task. The full study (every solver, programming noise, speed and energy) is
``kirchhoffnet diffusion evaluate RUN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from kirchhoffnet.config import DiffusionConfig
from kirchhoffnet.data.points import sample_points
from kirchhoffnet.data.seeds import split_seed
from kirchhoffnet.diffusion import plots
from kirchhoffnet.diffusion.checkpoint import load_tensors, save_module
from kirchhoffnet.diffusion.conditional import (
    CLASSIFIER_FILE,
    LATENT_TENSORS,
    LATENTS_FILE,
    VAE_FILE,
    evaluate_conditional,
    prepare,
)
from kirchhoffnet.diffusion.field import ScoreField
from kirchhoffnet.diffusion.loss import Saturation, drop_labels, dsm_loss
from kirchhoffnet.diffusion.metrics import kl_report
from kirchhoffnet.diffusion.run import Run, build_model, load_model, reference_points
from kirchhoffnet.diffusion.sampling import sample_run
from kirchhoffnet.errors import ConfigError, TrainingError
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.tasks.base import Task

VALIDATION_SEED_STEP = 2**20
"""The validation loss draws its diffusion times and noise from ``split_seed(seed, "val") +`` this, apart
from the draws of the validation points themselves."""


class DiffusionTask(Task):
    """Denoising score matching on fresh 2-D points every step; final KL of probability-flow samples."""

    primary = "kl_pooled"
    config: DiffusionConfig

    @classmethod
    def variant(cls, config: DiffusionConfig) -> type[Task]:
        """Conditional configs (``data: latent``) generate images through a VAE:
        [`LatentDiffusionTask`][kirchhoffnet.tasks.diffusion.LatentDiffusionTask]."""
        return cls if config.unconditional else LatentDiffusionTask

    def prepare(self) -> None:
        matching = self.config.score_matching
        self.val_x = sample_points(self.config.data, matching.val_size, seed=split_seed(self.config.seed, "val"))
        self.val_labels: Tensor | None = None

    def build_model(self) -> nn.Module:
        return build_model(self.config)

    def batch(self, indices: Tensor | None, generator: torch.Generator) -> Any:
        """Fresh points drawn with a seed from the step's generator, no labels."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return sample_points(self.config.data, self.config.train.batch_size, seed=seed), None

    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        x0, labels = batch
        matching = self.config.score_matching
        noise, rails = matching.noise_aware, matching.saturation
        saturation = (
            None if rails is None else Saturation(rails.level_v, rails.weight, self.config.analog.voltage_per_unit_v)
        )
        return dsm_loss(
            _score(model),
            x0.to(self.dtype),
            drop_labels(labels, matching.label_dropout, generator),
            generator,
            noise_std=noise.std if noise else 0.0,
            noise_limit=noise.limit if noise else 0.2,
            time_power=matching.time_power,
            noise_draws=noise.draws if noise else 1,
            saturation=saturation,
        )

    def validate(self, model: nn.Module) -> dict[str, float]:
        """The score-matching loss on held-out data with fixed times and noise (no weight noise, no label
        dropout), so that validations of different epochs are comparable."""
        generator = torch.Generator().manual_seed(split_seed(self.config.seed, "val") + VALIDATION_SEED_STEP)
        time_power = self.config.score_matching.time_power
        size = min(self.eval_batch, len(self.val_x))
        xs = self.val_x.split(size)
        ys = [None] * len(xs) if self.val_labels is None else list(self.val_labels.split(size))
        with torch.no_grad():
            losses = [
                float(dsm_loss(_score(model), x.to(self.dtype), y, generator, time_power=time_power)) * len(x)
                for x, y in zip(xs, ys, strict=True)
            ]
        return {"loss": sum(losses) / len(self.val_x)}

    def save_model(self, model: nn.Module, path: Path, metadata: dict[str, Any]) -> Path:
        return save_module(model, _score(model).spec(), path, metadata)

    def load_model(self, path: Path) -> nn.Module:
        return load_model(path, self.config)

    def test_data(self) -> tuple[Tensor, Tensor | None]:
        """The reference points the samples are compared with (``evaluate.reference_seed``)."""
        return self.tensor(reference_points(self.config)), None

    def evaluate(self, model: nn.Module, out_dir: Path, progress: bool = False) -> dict[str, Any]:
        config, n = self.config, self.config.evaluate.num_samples
        reference = reference_points(config)
        x, info = sample_run(Run(out_dir, config, _score(model)), n, "pf-ode", seed=config.seed)
        report = kl_report(x, reference)
        if report["kl_pooled"] is None:
            raise TrainingError(
                f"none of the {n} probability-flow samples lies within ±4, where the KL is measured: the score model "
                "is not trained enough (raise train.epochs or train.steps_per_epoch, or lower train.lr)"
            )
        figure = plots.sample_panels({f"{config.data} (reference)": reference.numpy(), "pf-ode": x.numpy()})
        save_figure(figure, out_dir / "samples.png")
        return {"data": config.data, "num_samples": n, **report, **info}

    def sampling_refusal(self) -> ConfigError:
        return ConfigError(
            "a diffusion run samples with `kirchhoffnet diffusion sample RUN --solver ...` (digital, circuit or analog)"
        )


class LatentDiffusionTask(DiffusionTask):
    """Class-conditional generation in a VAE's 2-D latent space; final judge accuracy on generated images.

    [`prepare`][kirchhoffnet.tasks.Task.prepare] trains the VAE and the judge once per run and keeps them in the run
    directory, so a resumed run continues on the same latents."""

    primary = "judge_accuracy"
    higher_is_better = True

    def prepare(self) -> None:
        if self.run_dir is None:
            raise ConfigError("the latent diffusion task keeps its VAE and judge in a run directory; give one")
        files = [self.run_dir / name for name in (VAE_FILE, CLASSIFIER_FILE, LATENTS_FILE)]
        self.prepared: dict[str, Any] = {}
        if not all(path.is_file() for path in files):
            self.prepared = prepare(self.config, self.run_dir, self.progress)[1]
        latents = load_tensors(self.run_dir / LATENTS_FILE, "latents", LATENT_TENSORS)
        self.train_data = (latents["train"].to(self.dtype), latents["train_labels"].long())
        self.val_x, self.val_labels = latents["test"].to(self.dtype), latents["test_labels"].long()

    def batch(self, indices: Tensor | None, generator: torch.Generator) -> Any:
        return Task.batch(self, indices, generator)

    def test_data(self) -> tuple[Tensor, Tensor | None]:
        """The held-out latents and their classes."""
        return self.val_x, self.val_labels

    def evaluate(self, model: nn.Module, out_dir: Path, progress: bool = False) -> dict[str, Any]:
        config = self.config
        run = Run(out_dir, config, _score(model))

        def sampler(n: int, solver: str, labels: Tensor, guidance: float) -> Tensor:
            return sample_run(run, n, solver, seed=config.seed, labels=labels, guidance=guidance)[0]

        metrics = evaluate_conditional(out_dir, config, sampler, ("pf-ode",), progress)
        return {"data": "latent", **self.prepared, **metrics, "judge_accuracy": metrics["pf-ode"]["accuracy"]}


def _score(model: nn.Module) -> Any:
    """The trained module as the score function it is (both score models are)."""
    score: ScoreField = model  # type: ignore[assignment]
    return score

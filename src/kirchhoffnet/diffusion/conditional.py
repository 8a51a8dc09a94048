"""The conditional latent task end to end: prepare the VAE, judge and latent data; evaluate generated images.

``prepare`` trains the class-prior VAE and the judging classifier on the configured images and returns
the scaled latent means the diffusion model learns; ``evaluate_conditional`` generates latents per class
with every solver, decodes them, and reports how often the judge recognises the intended class, plus a
guidance sweep, latent KLs and figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.config.diffusion import DiffusionConfig, LatentConfig
from kirchhoffnet.data.class_images import ClassImages, load_classes
from kirchhoffnet.data.images import image_set
from kirchhoffnet.diffusion import plots
from kirchhoffnet.diffusion.checkpoint import load_state, load_tensors, save_module, save_tensors
from kirchhoffnet.diffusion.latent import (
    Classifier,
    ConvVAE,
    accuracy,
    encode_means,
    prior_centres,
    train_classifier,
    train_vae,
)
from kirchhoffnet.diffusion.metrics import kl_or_none, kl_pooled
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.io.figures import save_figure

TEST_SHARE = 0.2
"""Share of the test file held out as ``test`` for a set whose offline copy has only its test files (MNIST)."""
VAE_FILE, CLASSIFIER_FILE, LATENTS_FILE = "vae.safetensors", "classifier.safetensors", "latents.safetensors"
LATENT_TENSORS = ("train", "train_labels", "test", "test_labels")

Sampler = Callable[[int, str, Tensor, float], Tensor]
"""``(n, solver, labels, guidance) → latents (n, 2)``."""


@dataclass
class LatentData:
    """What the diffusion model trains on, and what evaluation compares against."""

    train: Tensor
    train_labels: Tensor
    test: Tensor
    test_labels: Tensor
    names: tuple[str, ...]


def _settings(config: DiffusionConfig) -> LatentConfig:
    if config.latent is None or config.latent.classes is None:
        raise ConfigError("this run's config has no latent section with classes; is it a ring run?")
    return config.latent


def _images(lat: LatentConfig, split: str, max_images: int | None = None) -> ClassImages:
    return load_classes(
        lat.dataset,
        split,
        tuple(lat.classes or ()),
        lat.image_size,
        lat.data_dir,
        pooled=lat.pooled_size,
        max_images=max_images,
        split_test_fraction=TEST_SHARE if image_set(lat.dataset).test_only else None,
        root_key="latent.data_dir",
        download_key=None,
    )


def prepare(config: DiffusionConfig, out: Path, progress: bool = True) -> tuple[LatentData, dict[str, Any]]:
    """Train the VAE and the judge, save them into the run directory, and return the latent data."""
    lat = _settings(config)
    classes = tuple(lat.classes or ())
    train_set = _images(lat, "train", lat.max_train_images)
    test_set = _images(lat, "test")
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    vae = ConvVAE(lat.image_size)
    centres = prior_centres(len(classes), lat.prior_radius)
    vae_losses = train_vae(
        vae,
        train_set.images,
        train_set.labels,
        centres,
        lat.vae_epochs,
        lat.vae_kl_weight,
        seed=config.seed,
        progress=progress,
    )
    judge = Classifier(len(classes), lat.image_size)
    train_classifier(
        judge, train_set.images, train_set.labels, lat.classifier_epochs, seed=config.seed, progress=progress
    )
    data = LatentData(
        encode_means(vae, train_set.images) * lat.latent_scale,
        train_set.labels,
        encode_means(vae, test_set.images) * lat.latent_scale,
        test_set.labels,
        train_set.names,
    )
    with torch.no_grad():
        reconstructions = vae.decode(data.test / lat.latent_scale)
    metrics = {
        "classes": list(classes),
        "class_names": list(train_set.names),
        "train_images": len(train_set.images),
        "vae_final_loss": float(np.mean(vae_losses[-100:])),
        "judge_test_accuracy": accuracy(judge, test_set.images, test_set.labels),
        "judge_accuracy_on_reconstructions": accuracy(judge, reconstructions, test_set.labels),
        "prepare_time_s": time.perf_counter() - start,
    }
    save_module(vae, vae.spec(), out / VAE_FILE)
    save_module(judge, judge.spec(), out / CLASSIFIER_FILE)
    tensors = (data.train, data.train_labels, data.test, data.test_labels)
    save_tensors(dict(zip(LATENT_TENSORS, tensors, strict=True)), out / LATENTS_FILE, "latents")
    return data, metrics


def latent_batches(data: LatentData) -> Callable[[int, torch.Generator], tuple[Tensor, Tensor]]:
    """Training batches drawn with replacement from the latent data."""

    def batches(batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        index = torch.randint(0, len(data.train), (batch_size,), generator=generator)
        return data.train[index], data.train_labels[index]

    return batches


def _load(run_dir: Path, config: DiffusionConfig) -> tuple[ConvVAE, Classifier, dict[str, Tensor]]:
    lat = _settings(config)
    vae, judge = ConvVAE(lat.image_size), Classifier(config.num_classes, lat.image_size)
    load_state(vae, run_dir / VAE_FILE, "conv-vae")
    load_state(judge, run_dir / CLASSIFIER_FILE, "image-classifier")
    return vae, judge, load_tensors(run_dir / LATENTS_FILE, "latents", LATENT_TENSORS)


def evaluate_conditional(
    run_dir: Path, config: DiffusionConfig, sampler: Sampler, solvers: tuple[str, ...], progress: bool = True
) -> dict[str, Any]:
    """Judge accuracy and latent KL per class for each solver, a guidance sweep, and figures."""
    lat = _settings(config)
    vae, judge, latents = _load(run_dir, config)
    classes = config.num_classes
    per_class = max(1, config.evaluate.num_samples // classes)
    labels = torch.arange(classes).repeat_interleave(per_class)
    names = [image_set(lat.dataset).class_name(c) if isinstance(c, int) else c for c in lat.classes or ()]
    metrics: dict[str, Any] = {"samples_per_class": per_class}
    rows: dict[str, np.ndarray] = {}
    for c in range(classes):
        real = latents["test"][latents["test_labels"] == c][:10] / lat.latent_scale
        with torch.no_grad():
            rows[f"test set (VAE reconstruction), {names[c]}"] = vae.decode(real)[:, 0].numpy()

    def judge_solver(solver: str, guidance: float) -> dict[str, Any]:
        z = sampler(len(labels), solver, labels, guidance)
        with torch.no_grad():
            images = vae.decode(z / lat.latent_scale)
        result: dict[str, Any] = {"accuracy": accuracy(judge, images, labels), "guidance": guidance}
        result["accuracy_per_class"] = [
            accuracy(judge, images[labels == c], labels[labels == c]) for c in range(classes)
        ]
        result["latent_kl_pooled_per_class"] = [
            kl_or_none(kl_pooled, z[labels == c], latents["test"][latents["test_labels"] == c]) for c in range(classes)
        ]
        result["_images"], result["_latents"] = images, z
        return result

    guidance = config.sample.guidance
    scatter = {}
    for solver in solvers:
        result = judge_solver(solver, guidance)
        images, z = result.pop("_images"), result.pop("_latents")
        metrics[solver] = result
        scatter[solver] = z.numpy()
        for c in range(classes):
            rows[f"{solver}, {names[c]}"] = images[labels == c][:10, 0].numpy()
        if progress:
            per = np.round(result["accuracy_per_class"], 3).tolist()
            print(f"{solver:10s} judge accuracy {result['accuracy']:.3f} per class {per}", flush=True)
    sweep = []
    for w in config.evaluate.guidance_sweep:
        result = judge_solver(solvers[0], w)
        result.pop("_images"), result.pop("_latents")
        sweep.append(result)
        if progress:
            print(f"guidance {w:<4g} ({solvers[0]}) judge accuracy {result['accuracy']:.3f}", flush=True)
    metrics["guidance_sweep"] = {"solver": solvers[0], "results": sweep}
    save_figure(plots.image_rows(rows), run_dir / "images.png")
    test_latents = latents["test"].numpy()
    figure = plots.latent_scatter(test_latents, latents["test_labels"].numpy(), scatter, labels.numpy())
    save_figure(figure, run_dir / "latents.png")
    figure = plots.guidance_sweep([r["guidance"] for r in sweep], [r["accuracy_per_class"] for r in sweep], names)
    save_figure(figure, run_dir / "guidance.png")
    return metrics

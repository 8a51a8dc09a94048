"""The conditional task: class images → a 2-D VAE latent → conditional diffusion → decoded images.

As in the paper, a small convolutional VAE is trained with a class-dependent prior N(μ_c, I), the
centres μ_c evenly spaced on a circle of radius 4, so that the classes occupy separate regions of the
2-D latent plane; its posterior means, scaled by 1/8, are the diffusion model's data. A separate small
CNN, trained on the same images, judges whether generated images show their intended class.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kirchhoffnet._progress import bar
from kirchhoffnet.diffusion._threads import single_thread


def prior_centres(num_classes: int, radius: float) -> Tensor:
    """(C, 2) class-prior means on a circle, the first at 30° (the paper's layout for three classes)."""
    angles = math.pi / 6 + 2 * math.pi * torch.arange(num_classes) / num_classes
    return radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


class ConvVAE(nn.Module):
    """12 × 12 images ↔ a 2-D latent: two stride-2 convolutions (8, 16 channels) and a 16-unit layer."""

    def __init__(self, size: int = 12, latent: int = 2, channels: tuple[int, int] = (8, 16), hidden: int = 16) -> None:
        super().__init__()
        self.size, self.latent, self.channels, self.hidden = size, latent, channels, hidden
        c1, c2 = channels
        self.grid = size // 4
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c2 * self.grid * self.grid, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.ReLU(),
            nn.Linear(hidden, c2 * self.grid * self.grid),
            nn.ReLU(),
            nn.Unflatten(1, (c2, self.grid, self.grid)),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1),
        )

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance. Shapes: images (B, 1, S, S) → (B, latent) each."""
        mean, log_var = self.encoder(images).chunk(2, dim=1)
        return mean, log_var

    def decode(self, z: Tensor) -> Tensor:
        """Images in [0, 1]. Shapes: z (B, latent) → (B, 1, S, S)."""
        return torch.sigmoid(self.decoder(z))

    def spec(self) -> dict[str, object]:
        return {
            "kind": "conv-vae",
            "size": self.size,
            "latent": self.latent,
            "channels": list(self.channels),
            "hidden": self.hidden,
        }


class Classifier(nn.Module):
    """A small CNN that labels 12 × 12 images: the judge of generated images."""

    def __init__(self, num_classes: int, size: int = 12) -> None:
        super().__init__()
        self.num_classes, self.size = num_classes, size
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * (size // 4) ** 2, num_classes),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def spec(self) -> dict[str, object]:
        return {"kind": "image-classifier", "num_classes": self.num_classes, "size": self.size}


def _batches(n: int, batch: int, generator: torch.Generator) -> list[Tensor]:
    return list(torch.randperm(n, generator=generator).split(batch))


def train_vae(
    vae: ConvVAE,
    images: Tensor,
    labels: Tensor,
    centres: Tensor,
    epochs: int,
    kl_weight: float = 3.0,
    batch: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Maximise the ELBO with the class prior N(μ_label, I): BCE + kl_weight × KL, per image."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
    losses = []
    with single_thread():
        for _ in bar(range(epochs), desc="VAE", unit="epoch", enabled=progress):
            for index in _batches(len(images), batch, generator):
                x, mu = images[index], centres[labels[index]]
                mean, log_var = vae.encode(x)
                z = mean + torch.exp(0.5 * log_var) * torch.randn(mean.shape, generator=generator)
                logits = vae.decoder(z)
                bce = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
                kl = -0.5 * torch.sum(1 + log_var - (mean - mu).square() - log_var.exp())
                loss = (bce + kl_weight * kl) / len(x)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
    return losses


def train_classifier(
    classifier: Classifier,
    images: Tensor,
    labels: Tensor,
    epochs: int,
    batch: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
) -> None:
    """Cross-entropy training of the judging classifier."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    with single_thread():
        for _ in bar(range(epochs), desc="classifier", unit="epoch", enabled=progress):
            for index in _batches(len(images), batch, generator):
                loss = nn.functional.cross_entropy(classifier(images[index]), labels[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()


@torch.no_grad()
def accuracy(classifier: Classifier, images: Tensor, labels: Tensor) -> float:
    """Fraction of images the classifier labels as ``labels``."""
    with single_thread():
        predicted = torch.cat([classifier(chunk).argmax(dim=1) for chunk in images.split(4096)])
    return float((predicted == labels).double().mean())


@torch.no_grad()
def encode_means(vae: ConvVAE, images: Tensor) -> Tensor:
    """Posterior means of all images, (N, latent)."""
    with single_thread():
        return torch.cat([vae.encode(chunk)[0] for chunk in images.split(4096)])

"""Random rotation and translation of a training batch, as the original KirchhoffNet code augments images.

The original composes torchvision's ``RandomRotation(degrees)`` and ``RandomAffine(translate=...)``: an angle
uniform in ±degrees, a shift uniform in ±fraction of the width and height rounded to whole pixels, nearest-pixel
sampling and black (0) fill. Here the two are one affine map per sample, resampled once with ``grid_sample``
on the flattened batch the circuit reads, drawn from the run's generator so a run (and its resume) repeats.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def augment_images(
    flat: Tensor, shape: tuple[int, int, int], rotate_deg: float, translate: float, generator: torch.Generator
) -> Tensor:
    """Each row of ``flat`` (N, C·H·W, channel-major) turned by its own angle in ±``rotate_deg`` degrees about the
    image centre and shifted by whole pixels within ±``translate`` of the width and height; pixels that come
    from outside the image are 0. Nothing is drawn when both are 0, and the batch comes back unchanged."""
    if rotate_deg == 0 and translate == 0:
        return flat
    n = flat.shape[0]
    c, h, w = shape
    uniform = torch.rand(n, 3, generator=generator, dtype=torch.float64) * 2 - 1  # in [-1, 1)
    angle = -uniform[:, 0] * math.radians(rotate_deg)  # rows run downwards: a positive draw turns counter-clockwise
    # Whole-pixel shifts as torchvision rounds them; in grid_sample's [-1, 1] coordinates a pixel is 2/size.
    shift_x = torch.round(uniform[:, 1] * translate * w) * 2 / w
    shift_y = torch.round(uniform[:, 2] * translate * h) * 2 / h
    cos, sin = torch.cos(angle), torch.sin(angle)
    # The grid maps each output pixel to where it is read from: the inverse of "rotate, then shift".
    # Pixel coordinates (not [-1, 1]) make the rotation angle-true on non-square images.
    aspect = h / w
    theta = torch.stack(
        [
            torch.stack([cos, sin * aspect, -(cos * shift_x + sin * aspect * shift_y)], 1),
            torch.stack([-sin / aspect, cos, -(-sin / aspect * shift_x + cos * shift_y)], 1),
        ],
        1,
    )
    images = flat.reshape(n, c, h, w)
    grid = F.affine_grid(theta.to(images), [n, c, h, w], align_corners=False)
    turned = F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return turned.reshape(n, -1)

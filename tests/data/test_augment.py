"""Training-time rotation/translation of image batches (the original code's MNIST augmentation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import kirchhoffnet as kn
from kirchhoffnet.config import parse_config
from kirchhoffnet.data.augment import augment_images
from kirchhoffnet.data.supplied import WHOLE
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.tasks import make_task


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(n: int = 6, c: int = 2, h: int = 8, w: int = 8) -> Tensor:
    return torch.rand(n, c * h * w, generator=_gen(123))


def test_zero_rotation_and_a_sub_pixel_shift_give_the_batch_back_exactly():
    x = _batch()
    assert torch.equal(augment_images(x, (2, 8, 8), 0.0, 0.0, _gen()), x)
    # translate 0.05 of 8 px rounds to no shift: the resampling path itself must be the identity
    assert torch.equal(augment_images(x, (2, 8, 8), 0.0, 0.05, _gen()), x)


def _first_draw(seed: int) -> float:
    """The angle's share of its range that `augment_images` draws first from a generator seeded ``seed``."""
    return float(torch.rand(1, 3, generator=_gen(seed), dtype=torch.float64)[0, 0] * 2 - 1)


@pytest.mark.parametrize(("seed", "k"), [(0, 1), (1, -1)])
def test_a_quarter_turn_is_rot90_counter_clockwise_for_a_positive_draw(seed, k):
    """The range is scaled so the draw lands on exactly ±90°: nearest sampling of pixel centres makes the
    turn exact, borders included; a positive draw turns counter-clockwise as shown (torchvision's sense)."""
    draw = _first_draw(seed)
    assert np.sign(draw) == k and abs(draw) > 0.5  # the seeds are chosen for these draws
    x = _batch(n=1, c=1, h=6, w=6)
    turned = augment_images(x, (1, 6, 6), 90.0 / abs(draw), 0.0, _gen(seed)).reshape(6, 6)
    assert torch.equal(turned, torch.rot90(x.reshape(6, 6), k))


def _shifted(image: Tensor, dy: int, dx: int) -> Tensor:
    """``image`` moved down by dy and right by dx pixels, 0 where nothing comes in."""
    out = torch.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_a_shift_moves_whole_pixels_within_the_range_and_fills_black():
    x = torch.arange(1.0, 101.0).reshape(1, 100)  # one 10x10 image without a 0 pixel
    image = x.reshape(10, 10)
    for seed in range(5):
        moved = augment_images(x, (1, 10, 10), 0.0, 0.3, _gen(seed)).reshape(10, 10)
        matches = [
            (dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if torch.equal(moved, _shifted(image, dy, dx))
        ]
        assert len(matches) == 1, f"seed {seed}: not a whole-pixel shift within ±3 px"
        if matches[0] != (0, 0):
            break
    else:
        pytest.fail("five seeds and no shift")


def test_the_same_seed_gives_the_same_batch_and_another_seed_another():
    x = _batch()
    first = augment_images(x, (2, 8, 8), 15.0, 0.1, _gen(7))
    assert torch.equal(first, augment_images(x, (2, 8, 8), 15.0, 0.1, _gen(7)))
    assert not torch.equal(first, augment_images(x, (2, 8, 8), 15.0, 0.1, _gen(8)))
    assert not torch.equal(first, x)


def _config(augment: dict | None) -> dict:
    data = {"source": "memory"} | ({} if augment is None else {"augment": augment})
    return {
        "task": "classify",
        "threads": 1,
        "data": data,
        "circuit": {"topology": {"name": "fully_connect", "num_nodes": 21, "repeat": [1, 1]}, "times": [0.0, 1.0]},
        "readout": "last3",
        "train": {"epochs": 1, "batch_size": 16, "lr": 1e-2},
    }


class _Spy(nn.Module):
    """Records what it is fed; logits are the first three inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Tensor] = []
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x.detach().clone())
        return x[:, :3] + self.bias


def test_training_batches_are_augmented_and_validation_and_test_are_not(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(1, 255, size=(60, 4, 4)).astype(np.uint8), np.arange(60) % 3
    task = make_task(parse_config(_config({"rotate_deg": 30, "translate": 0.25})), supplied={WHOLE: (images, labels)})
    task.prepare()
    assert task.image_shape == (1, 4, 4)
    spy = _Spy()
    x, y = task.batch(torch.arange(16), _gen())
    task.loss(spy, (x, y), _gen(3))
    assert not torch.equal(spy.seen[-1], x)  # the training batch was turned/shifted
    task.validate(spy)
    assert torch.equal(spy.seen[-1], task.val_xy[0])
    task.evaluate(spy, tmp_path)
    assert torch.equal(spy.seen[-1], task.test_data()[0])


def test_augmentation_is_off_by_default_and_its_ranges_are_checked():
    assert parse_config(_config(None)).data.augment is None
    with pytest.raises(ConfigError, match="translate"):
        parse_config(_config({"translate": 0.5}))
    with pytest.raises(ConfigError, match="rotate_deg"):
        parse_config(_config({"rotate_deg": -1}))
    with pytest.raises(ConfigError, match="shear"):
        parse_config(_config({"shear": 0.1}))


def test_two_runs_with_one_seed_train_alike_and_augmentation_changes_the_training(tmp_path):
    """Through the trainer: the draws come from the step's generator, so the same seed repeats the run."""
    rng = np.random.default_rng(0)
    labels = np.arange(48) % 3
    images = (labels[:, None, None] * 80 + rng.integers(0, 60, size=(48, 4, 4))).astype(np.uint8)
    augment = {"rotate_deg": 15, "translate": 0.25}
    losses = [
        kn.train(_config(a), tmp_path / name, progress=False, data=(images, labels)).metrics["history"]["train_loss"]
        for name, a in (("a", augment), ("b", augment), ("plain", None))
    ]
    assert losses[0] == losses[1] and losses[0] != losses[2]

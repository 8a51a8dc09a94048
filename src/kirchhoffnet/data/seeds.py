"""Which seed draws which data: one table, so that every run, evaluation and comparison of a data set
draws the very same held-out points from the same user-facing seed.

Two families, both kept because published numbers were measured on them:

* a run's **splits** (``train``, ``val``, ``test`` and the ``noise`` of a task's sampling) are streams of
  `numpy.random.SeedSequence` ``[seed, split]``: independent of each other, whatever the seed;
* an **evaluation's draws** are ``seed + offset``, so that a user who passes ``--seed S`` (or
  ``evaluate.reference_seed``) can draw the same reference points with any other tool.
"""

import numpy as np

SPLITS = {"train": 0, "val": 1, "test": 2, "noise": 3}
"""A run's data splits and the key each mixes into its seed sequence."""

DRAWS = {"base": 0, "reference": 0, "data": 1, "floor": 1, "nll": 2}
"""An evaluation's draws and their offsets from its seed: a flow's ``base`` samples at the seed and the
``data`` it is compared with at + 1 (``kirchhoffnet eval``, the hardware studies); a diffusion run's
``reference`` points at its reference seed, the second set of the metric's noise ``floor`` at + 1 and the
``nll`` points at + 2."""


def split_seed(seed: int, split: str) -> int:
    """The seed of one split of a run's data: train, val, test and noise never share draws."""
    return int(np.random.SeedSequence([seed, SPLITS[split]]).generate_state(1)[0])


def draw_seed(seed: int, draw: str) -> int:
    """The seed of one of an evaluation's draws (`DRAWS`)."""
    return int(seed) + DRAWS[draw]

"""Intra-op threading for the tiny tensors of this package."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one intra-op thread, then restore the previous setting.

    The score network's products are (14 × 14) @ (14 × B): a second thread saves little, and on a
    machine whose cores are busy, waiting for it makes every operation up to ~100× slower (measured).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

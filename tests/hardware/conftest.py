"""Hardware tests run their many small solves on one thread: on a shared machine, torch's
intra-op threads only contend with each other for tensors this small."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""Fixtures the command-line tests share."""

from __future__ import annotations

import pytest

import kirchhoffnet as kn
from tests.conftest import small_circuit


@pytest.fixture
def flow_checkpoint(tmp_path):
    """A saved two-slice, three-node flow in ``tmp_path/run``."""
    path = tmp_path / "run" / "model.safetensors"
    kn.save(kn.Flow(small_circuit("ShiftTanh2", num_nodes=3, slices=2)), path)
    return path

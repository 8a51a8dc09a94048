"""Snapshot: a cache's record of a tensor's exact values, compared piece by piece on CPU."""

from __future__ import annotations

import pytest
import torch

from kirchhoffnet.circuit._snapshot import Snapshot


@pytest.mark.parametrize("where", [0, 40_000, 99_999])  # the first piece, a middle one, the ragged last
def test_a_change_in_any_piece_is_seen(where):
    values = torch.randn(2, 50_000)
    snapshot = Snapshot(values)
    assert snapshot.matches(values.clone())
    changed = values.clone()
    changed.view(-1)[where] = torch.nextafter(changed.view(-1)[where], torch.tensor(float("inf")))
    assert not snapshot.matches(changed)


def test_bit_level_differences_count_and_nan_equals_itself():
    values = torch.tensor([0.0, float("nan"), 1.0])
    snapshot = Snapshot(values)
    assert snapshot.matches(values.clone())
    assert not snapshot.matches(torch.tensor([-0.0, float("nan"), 1.0]))
    assert not snapshot.matches(values.double())  # another dtype
    assert not snapshot.matches(values[:2])  # another shape

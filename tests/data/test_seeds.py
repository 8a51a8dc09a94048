"""The one table of which seed draws which data."""

import pytest

from kirchhoffnet.data.seeds import DRAWS, SPLITS, draw_seed, split_seed


def test_splits_of_one_seed_are_distinct_and_reproducible() -> None:
    seeds = {split: split_seed(7, split) for split in SPLITS}
    assert len(set(seeds.values())) == len(SPLITS)
    assert seeds == {split: split_seed(7, split) for split in SPLITS}
    assert split_seed(8, "val") != seeds["val"]


def test_evaluation_draws_keep_the_offsets_published_numbers_were_measured_with() -> None:
    # kirchhoffnet eval: base samples at the seed, data at + 1; diffusion: reference, floor, nll at + 0/1/2
    assert [draw_seed(12345, d) for d in ("base", "data", "reference", "floor", "nll")] == [
        12345, 12346, 12345, 12346, 12347,
    ]  # fmt: skip
    assert set(DRAWS) == {"base", "data", "reference", "floor", "nll"}


def test_an_unknown_split_or_draw_is_refused() -> None:
    with pytest.raises(KeyError):
        split_seed(0, "validation")
    with pytest.raises(KeyError):
        draw_seed(0, "held_out")

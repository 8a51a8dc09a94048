"""Data: 2-D toy distributions and readers for standard data set files."""

from kirchhoffnet.data._idx import read_idx
from kirchhoffnet.data.toy2d import TOY_SETS, sample_toy

__all__ = ["TOY_SETS", "read_idx", "sample_toy"]

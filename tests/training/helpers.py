"""Tiny configs that train in about a second, for tests of the training machinery."""

from __future__ import annotations

from typing import Any

from kirchhoffnet.config import apply_overrides, parse_config


def tiny_flow(*overrides: str, **top: Any) -> Any:
    """A 2-D flow small enough to train 4 epochs in a second or two (one core)."""
    data = {
        "task": "flow2d",
        "threads": 1,
        "data": {"name": "twomoon", "train_size": 256, "val_size": 256, "test_size": 256},
        "circuit": {"topology": {"name": "fully_connect", "num_nodes": 3, "repeat": [2, 2]}, "times": [0.0, 1.0]},
        "solver": {"rtol": 1e-3, "atol": 1e-3, "gradient": "backprop"},
        "train": {"epochs": 4, "batch_size": 64, "lr": 2e-2},
        "grid": 10,
    }
    data.update(top)
    return parse_config(apply_overrides(data, list(overrides)))


def tiny_regression(*overrides: str) -> Any:
    """A friedman regression with a 12-node circuit: one epoch of 3 steps in well under a second."""
    data = {
        "task": "regression",
        "threads": 1,
        "data": {"name": "friedman", "n_samples": 200, "n_features": 5},
        "circuit": {"topology": {"name": "fully_connect", "num_nodes": 8, "repeat": [1, 1]}, "times": [0.0, 1.0]},
        "solver": {"rtol": 1e-3, "atol": 1e-3, "gradient": "backprop"},
        "train": {"epochs": 1, "batch_size": 64, "lr": 1e-2},
    }
    return parse_config(apply_overrides(data, list(overrides)))

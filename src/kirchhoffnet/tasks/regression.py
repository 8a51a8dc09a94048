"""Tabular regression: a KirchhoffNet (inputs as initial voltages, one output node) or an MLP baseline."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kirchhoffnet.config import RegressionConfig
from kirchhoffnet.config.tasks import check_features
from kirchhoffnet.data.files import read_table, table_arrays
from kirchhoffnet.data.supplied import WHOLE
from kirchhoffnet.data.tabular import (
    ORIGINAL_TEST_FRACTION,
    load_regression,
    split_min_max,
    split_standardize,
    standardize,
)
from kirchhoffnet.errors import ConfigError, DataError
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.models.baselines import MLP, Baseline
from kirchhoffnet.tasks.base import NetworkTask
from kirchhoffnet.tasks.plots import predicted_vs_true


def r_squared(mse: float, variance: float) -> dict[str, Any]:
    """``{"r2": 1 − MSE / Var(y)}``; R² is undefined when the targets do not vary (0/0 or x/0), so
    it is then ``None`` with an ``r2_note`` saying why, rather than a crash or an infinity."""
    if not variance > 0:
        return {"r2": None, "r2_note": "undefined: the test targets are constant (zero variance)"}
    return {"r2": 1.0 - mse / variance}


TARGET_SCALES = {"standard": "standardised", "original": "min-max [0, 1]"}
"""What the MSE is measured on under each protocol (``metrics.json``'s ``target_scale``)."""


class RegressionTask(NetworkTask):
    """MSE on the scaled targets (standardised, or min-max [0, 1] under the original protocol); test
    MSE (scaled and in the data's units), R², and a predicted-vs-true plot at the end."""

    primary = "mse"
    config: RegressionConfig

    def prepare(self) -> None:
        data = self.config.data
        if data.source == "named":
            given = {WHOLE: self._named()}
        else:
            given = self.own_data(
                lambda: {WHOLE: read_table(str(data.path), data.target, data.features, data.x_array, data.y_array)},
                table_arrays,
            )
        widths = {x.shape[1] for x, _ in given.values()}
        if len(widths) > 1:
            raise DataError(f"data: the splits have different numbers of features {sorted(widths)}")
        features = widths.pop()
        if self.config.circuit is not None:
            try:
                check_features(data.label, features, self.config.circuit)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if WHOLE in given and data.protocol == "original":
            parts = split_min_max(*given[WHOLE], ORIGINAL_TEST_FRACTION[str(data.name)], data.seed)
        elif WHOLE in given:
            parts = split_standardize(*given[WHOLE], data.val_fraction, data.test_fraction, data.seed)
        else:
            parts = standardize(given)
        self.num_features = features
        self.parts = {k: (self.tensor(a), self.tensor(b)) for k, (a, b) in parts.items() if k != "scale"}
        self.y_mean, self.y_std = (float(v) for v in parts["scale"])
        self.train_data = self.parts["train"]

    def _named(self) -> tuple[np.ndarray, np.ndarray]:
        data = self.config.data
        return load_regression(
            str(data.name),
            path=data.path,
            housing_format=data.format,
            n_samples=data.n_samples,
            n_features=data.n_features,
            noise=data.noise,
            seed=data.seed,
            protocol=data.protocol,
            download=data.download,
        )

    def build_baseline(self) -> Baseline:
        settings = self.baseline_settings()[1]
        return MLP(self.num_features, settings["hidden"], 1, settings["activation"])

    def baseline_settings(self) -> tuple[type[Baseline], dict[str, Any]]:
        baseline = self.config.baseline
        assert baseline is not None  # asked of baseline runs only
        return MLP, {"hidden": list(baseline.hidden), "activation": baseline.activation, "out_features": 1}

    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        x, y = batch
        return F.mse_loss(model(x).squeeze(-1), y)

    def _mse(self, model: nn.Module, split: str) -> tuple[float, Tensor]:
        x, y = self.parts[split]
        predicted = self.predict(model, x).squeeze(-1)
        return float(F.mse_loss(predicted, y)), predicted

    def validate(self, model: nn.Module) -> dict[str, float]:
        return {"loss": self._mse(model, "val")[0]}

    def test_data(self) -> tuple[Tensor, Tensor]:
        return self.parts["test"]

    def evaluate(self, model: nn.Module, out_dir: Path, progress: bool = False) -> dict[str, Any]:
        mse, predicted = self._mse(model, "test")
        truth = self.parts["test"][1]
        truth_units = (truth * self.y_std + self.y_mean).cpu().numpy()
        predicted_units = (predicted * self.y_std + self.y_mean).cpu().numpy()
        scale = TARGET_SCALES[self.config.data.protocol]
        title = f"{self.config.data.label}: test MSE {mse:.4f} ({scale})"
        save_figure(predicted_vs_true(truth_units, predicted_units, title), out_dir / "predicted_vs_true.png")
        return {
            "dataset": self.config.data.label,
            "mse": mse,
            "target_scale": scale,
            "rmse_units": math.sqrt(mse) * self.y_std,
            **r_squared(mse, float(truth.var(unbiased=False))),
            "num_features": self.num_features,
            "num_test": len(truth),
        }

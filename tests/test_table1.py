"""The paper's Table I: its configs (generated, in sync, the paper's sizes), the original protocol as a
data option, and the table the experiment script writes from its JSON."""

from __future__ import annotations

import json
import sys
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from kirchhoffnet.config import load_config, parse_config, to_yaml
from kirchhoffnet.devices import resolve
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.topology import fully_connect

from .conftest import experiment_script, write_finished_run

REPO = Path(__file__).resolve().parents[1]
TABLE1 = REPO / "configs" / "regression" / "table1"
# The paper's Table I: circuit parameters per data set, small / medium / large.
PAPER_PARAMS = {"friedman": (168, 528, 1520), "housing": (360, 840, 1520), "diabetes": (528, 840, 1520)}


def test_shipped_configs_are_the_generators_output():
    generated = experiment_script("table1_configs").configs()
    assert sorted(generated) == sorted(p.name for p in TABLE1.glob("*.yaml"))
    for name, text in generated.items():
        assert (TABLE1 / name).read_text() == text, f"{name} is stale: run experiments/table1_configs.py"


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_configs_have_the_papers_sizes(name):
    for size, paper in zip(("small", "medium", "large"), PAPER_PARAMS[name], strict=True):
        circuit = load_config(TABLE1 / f"{name}-kirchhoffnet-{size}.yaml")
        assert circuit.data.protocol == "original" and circuit.train.epochs == 40 and circuit.train.lr == 1e-3
        (topology,) = circuit.circuit.topology
        device_params = len(resolve(circuit.circuit.device).param_names)
        assert device_params == 2
        assert fully_connect(topology.num_nodes).shape[1] * device_params == paper
        mlp = load_config(TABLE1 / f"{name}-mlp-{size}.yaml")
        features = {"friedman": 5, "housing": 8, "diabetes": 10}[name]
        widths = [features, *mlp.baseline.hidden, 1]
        mlp_params = sum((a + 1) * b for a, b in pairwise(widths))
        assert abs(mlp_params - paper) <= 0.1 * paper  # comparable size


def test_original_protocol_fixes_the_friedman_set():
    base = {"task": "regression", "baseline": {"hidden": [4]}, "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3}}
    config = parse_config({**base, "data": {"name": "friedman", "protocol": "original"}})
    assert (config.data.n_samples, config.data.n_features, config.data.noise, config.data.seed) == (4096, 5, 0.0, 42)
    assert parse_config(yaml.safe_load(to_yaml(config))) == config  # a run's resolved config.yaml loads again
    assert parse_config({**base, "data": {"name": "diabetes", "protocol": "original", "seed": 3}}).data.seed == 3
    with pytest.raises(
        ConfigError, match=r"data\.n_samples: .*the original protocol fixes the sizes and split; remove it"
    ):
        parse_config({**base, "data": {"name": "friedman", "protocol": "original", "n_samples": 100}})
    with pytest.raises(ConfigError, match=r"data\.test_fraction: .*the original protocol fixes the sizes and split"):
        parse_config({**base, "data": {"name": "diabetes", "protocol": "original", "test_fraction": 0.25}})


def test_table1_writes_the_readme_record_of_its_runs(tmp_path, monkeypatch):
    script = experiment_script("regression_table")
    monkeypatch.setattr(script, "train_unless_finished", lambda config, overrides, run_dir: None)  # runs below
    monkeypatch.setattr(sys, "argv", ["regression_table.py", "--table1", "--datasets", "diabetes"])
    for size in ("small", "medium", "large"):
        for kind, mse in (("kirchhoffnet", 0.03), ("mlp", 0.02)):
            run = tmp_path / "original" / "diabetes" / f"{kind}-{size}" / "seed0"
            write_finished_run(run, 0, mse, primary_metric="mse", num_params=528)
    text = script.table1(["diabetes"], ["original"], [0], tmp_path, [])
    record = json.loads((tmp_path / "table1.json").read_text())
    assert record["command"] == "python experiments/regression_table.py --table1 --datasets diabetes"
    assert record["cells"]["original/diabetes/mlp-large"]["values"]["mse"] == [0.02]
    assert (tmp_path / "table1.md").read_text() == text + "\n"
    assert text == script.readme_results.table1(record)  # the README's table, one renderer
    assert "| original | diabetes | large | 0.0300 (528 p.) | **0.0200** (528 p.) |" in text


def test_download_is_for_housing_only():
    base = {"task": "regression", "baseline": {"hidden": [4]}, "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3}}
    with pytest.raises(ConfigError, match=r"data\.download: .*only housing is downloaded, diabetes is generated or"):
        parse_config({**base, "data": {"name": "diabetes", "download": True}})

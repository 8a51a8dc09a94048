"""The paper's Table I: its configs (generated, in sync, the paper's sizes), the original protocol as a
data option, and the table the experiment script writes from its JSON."""

from __future__ import annotations

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


def test_table_is_generated_from_the_json():
    script = experiment_script("regression_table")
    cell = {"num_params": 168, "seeds": [0, 1], "mse": [0.002, 0.004], "train_cpu_time_s": [1.0, 1.0]}
    mlp = {"num_params": 181, "seeds": [0, 1], "mse": [0.005, 0.005], "train_cpu_time_s": [1.0, 1.0]}
    results = {"original": {"friedman": {"kirchhoffnet-small": cell, "mlp-small": mlp}}}
    for c in (cell, mlp):
        c["mse_mean"], c["mse_std"] = sum(c["mse"]) / 2, 0.0 if c is mlp else 0.0014142
    text = script.table1_markdown(results)
    assert "**original recipe**" in text
    assert "| friedman | small | **0.00300 ± 0.00141** (168 p.) | 0.00500 ± 0.00000 (181 p.) | 2 |" in text
    assert "medium" not in text  # a size without both models is left out, not shown half


def test_collect_reads_finished_runs(tmp_path):
    import json

    script = experiment_script("regression_table")
    for seed, mse in ((0, 0.01), (1, 0.03)):
        run = tmp_path / "tuned" / "diabetes" / "mlp-large" / f"seed{seed}"
        write_finished_run(run, seed, mse, num_params=1519, train_cpu_time_s=2.0)
    unfinished = tmp_path / "tuned" / "diabetes" / "mlp-large" / "seed2"
    unfinished.mkdir()
    (unfinished / "metrics.json").write_text(json.dumps({"status": "running"}))
    cell = script.collect(tmp_path)["tuned"]["diabetes"]["mlp-large"]
    assert cell["seeds"] == [0, 1] and cell["mse_mean"] == pytest.approx(0.02)
    assert cell["mse_std"] == pytest.approx(0.0141421356)


def test_download_is_for_housing_only():
    base = {"task": "regression", "baseline": {"hidden": [4]}, "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3}}
    with pytest.raises(ConfigError, match=r"data\.download: .*only housing is downloaded, diabetes is generated or"):
        parse_config({**base, "data": {"name": "diabetes", "download": True}})

from pathlib import Path

import pytest

from kirchhoffnet.diffusion.config import load_config, parse_config
from kirchhoffnet.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "diffusion").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    assert config.sde.beta_max / 2 >= 3  # ∫β ≥ 3, so sampling may start from N(0, I)


def test_defaults_and_resolved_classes():
    assert parse_config({}).task == "ring" and parse_config({}).unconditional
    assert parse_config({"task": "pinwheel", "model": {"kind": "kirchhoffnet"}}).circuit is not None
    latent = parse_config({"task": "latent", "latent": {"dataset": "mnist"}})
    assert latent.latent.classes == [0, 1, 7] and latent.num_classes == 3


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"train": {"stepz": 3}}, r"x.yaml: train.stepz: Extra inputs are not permitted"),
        ({"sde": {"beta_min": -1}}, r"x.yaml: sde.beta_min: Input should be greater than 0"),
        ({"rram": {"g_min_s": 1e-3}}, r"x.yaml: rram: Value error, g_max_s \(0.0001\) must exceed g_min_s \(0.001\)"),
        ({"latent": {}}, r"x.yaml: \(top level\): Value error, the ring task takes no 'latent' section"),
        ({"task": "latent", "latent": {"classes": [1]}}, "latent.classes needs at least 2 distinct classes, got"),
        ({"model": {"parametrization": "eps"}}, r"x.yaml: model.parametrization: Input should be 'score' or 'noise'"),
        ([1, 2], "x.yaml: expected a mapping of settings at the top level, got list"),
        ({"task": "latent", "train": {"init_from": "runs/ring"}}, "train.init_from is only supported by the 2-D tasks"),
        (
            {"task": "moons"},
            r"x.yaml: task: Value error, unknown task 'moons'; choose one of: 2spirals, 8gaussians, .*twomoon",
        ),
        ({"task": "twomoon", "latent": {}}, "the twomoon task takes no 'latent' section"),
        ({"train": {"noise_aware": {"draws": 0}}}, r"x.yaml: train.noise_aware.draws: Input should be greater than or"),
        ({"rram": {"verify_tolerance": 0}}, r"x.yaml: rram.verify_tolerance: Input should be greater than 0"),
    ],
)
def test_bad_configs_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(data, "x.yaml")


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*missing.yaml not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML at line 2"):
        load_config(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == parse_config({}, "defaults")  # an empty file means every default

"""The diffusion task's config: shipped configs load, the model union takes only its kind's settings,
and every bad setting is one line naming its key."""

from pathlib import Path

import pytest

from kirchhoffnet.config import DiffusionConfig, load_config, parse_config
from kirchhoffnet.config.diffusion import CircuitScoreConfig, CrossbarScoreConfig
from kirchhoffnet.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "diffusion").glob("*.yaml"))
TRAIN = {"epochs": 1, "steps_per_epoch": 3, "batch_size": 8, "lr": 1e-3}


def _config(**settings):
    return {"task": "diffusion", "data": "ring", "train": TRAIN, **settings}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    assert isinstance(config, DiffusionConfig) and config.threads == 1
    assert config.sde.beta_max / 2 >= 3  # ∫β ≥ 3, so sampling may start from N(0, I)
    assert config.train.ema_decay == 0.999 and config.train.epochs * config.train.steps_per_epoch >= 4000


def test_defaults_the_model_union_and_resolved_classes():
    config = parse_config(_config())
    assert config.unconditional and isinstance(config.model, CrossbarScoreConfig) and config.model.width == 14
    circuit = parse_config(_config(data="pinwheel", model={"kind": "kirchhoffnet", "hidden": 4}))
    assert isinstance(circuit.model, CircuitScoreConfig) and circuit.model.hidden == 4
    latent = parse_config(_config(data="latent", latent={"dataset": "mnist"}))
    assert latent.latent.classes == [0, 1, 7] and latent.num_classes == 3
    assert parse_config(_config(data="latent", train={**TRAIN, "steps_per_epoch": None})).train.steps_per_epoch is None


def test_the_paper_setting_names_its_classes_and_pools_to_14():
    paper = load_config(Path(__file__).resolve().parents[2] / "configs" / "diffusion" / "latent_emnist.yaml")
    assert paper.latent.dataset == "emnist_byclass" and paper.latent.classes == [17, 20, 30]  # uppercase H, K, U
    assert (paper.latent.pooled_size, paper.latent.image_size) == (14, 12)
    mixed = parse_config(_config(data="latent", latent={"dataset": "emnist_byclass", "classes": ["h", 30]}))
    assert mixed.latent.classes == [43, 30] and mixed.num_classes == 2  # lowercase h is its own class


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_config(train={**TRAIN, "stepz": 3}), r"train.stepz: unknown key; valid keys here: epochs, batch_size"),
        (_config(sde={"beta_min": -1}), r"sde.beta_min: must be > 0.0, got -1"),
        (_config(sde={"beta_max": 1e308}), r"sde.beta_max: ∫β = .* overflows the samplers"),
        (
            _config(model={"kind": "mlp"}),
            r"model: unknown or missing model kind; choose one of: crossbar, kirchhoffnet",
        ),
        (_config(model={"width": 3}), r"model: unknown or missing model kind; choose one of: crossbar, kirchhoffnet"),
        (_config(model={"kind": "kirchhoffnet", "width": 3}), r"model.width: unknown key"),
        (_config(model={"kind": "crossbar", "hidden": 3}), r"model.hidden: unknown key"),
        (_config(model={"kind": "kirchhoffnet", "time_nodes": 3}), r"model.time_nodes: must be even"),
        (_config(model={"kind": "crossbar", "parametrization": "eps"}), r"model.parametrization: must be one of"),
        (_config(rram={"g_min_s": 1e-3}), r"rram: g_max_s \(0.0001\) must exceed g_min_s \(0.001\)"),
        (_config(latent={}), r"latent: the ring data take no 'latent' section"),
        (_config(data="latent", latent={"classes": [1]}), r"latent.classes: needs at least 2 distinct classes"),
        (
            _config(data="latent", latent={"dataset": "emnist_byclass", "classes": ["H", "Ä"]}),
            r"latent.classes: unknown class 'Ä'; choose one of: 0, 1",
        ),
        (
            _config(data="latent", latent={"dataset": "emnist_byclass", "classes": ["H", 17]}),
            r"latent.classes: needs at least 2 distinct classes, got \['H', 17\]",
        ),
        (_config(data="latent", latent={"pooled_size": 10}), r"latent.pooled_size: 10 pixels cannot be cropped to"),
        (_config(data="moons"), r"data: must be one of ring, twomoon, .*, latent, got .moons."),
        (
            _config(data="latent", score_matching={"init_from": "runs/ring"}),
            r"score_matching.init_from: only the 2-D tasks fine-tune",
        ),
        (_config(score_matching={"noise_aware": {"draws": 0}}), r"score_matching.noise_aware.draws: must be >= 1"),
        (
            _config(score_matching={"noise_aware": {"draws": 3}}),
            r"score_matching.noise_aware.draws: 3 must divide train.batch_size \(8\)",
        ),
        (
            _config(model={"kind": "kirchhoffnet"}, score_matching={"noise_aware": {}}),
            r"score_matching.noise_aware: it perturbs crossbar weights",
        ),
        (_config(model={"kind": "kirchhoffnet"}, sample={"sde_score_gain": 2}), r"sample.sde_score_gain: must be 1"),
        (_config(sample={"ode_beta_scale": 25.0}), r"sample.ode_beta_scale: 25 × ∫β = .* overflows"),
        (_config(train={**TRAIN, "steps_per_epoch": None}), r"train.steps_per_epoch: the 2-D tasks draw fresh points"),
        (_config(hardware_aware={"edge": 0.05}), r"hardware_aware: the score models have no KirchhoffNet dies"),
        (_config(rram={"verify_tolerance": 0}), r"rram.verify_tolerance: must be > 0.0, got 0"),
    ],
)
def test_bad_configs_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(data, "x.yaml")

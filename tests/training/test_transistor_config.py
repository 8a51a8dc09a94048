"""The shipped transistor-faithful config: its device spec tabulates the BSIM4 card, and it trains."""

from __future__ import annotations

from pathlib import Path

import pytest

import kirchhoffnet as kn
from kirchhoffnet.config import load_config
from kirchhoffnet.config.circuit import build_device, device_template
from kirchhoffnet.devices import TransistorTable
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.training import train

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "flow2d" / "twomoon_bsim4.yaml"
SMALL = ["train.epochs=1", "data.train_size=512", "data.val_size=32", "data.test_size=32"]


def test_the_spec_validates_without_ngspice_and_names_its_settings():
    config = load_config(CONFIG)  # no tabulation yet: checking a config needs no simulator
    assert config.circuit.device["card"] == "bsim4_45nm"
    assert isinstance(device_template(config.circuit.device), TransistorTable)
    with pytest.raises(ConfigError, match=r"TransistorTable with a card takes .*not \['vdd'\]"):
        load_config(CONFIG, ["circuit.device.vdd=1.0"])


@pytest.mark.needs_ngspice
def test_the_bsim4_twomoon_config_trains_and_its_checkpoint_needs_no_ngspice(tmp_path, monkeypatch):
    monkeypatch.setenv("KIRCHHOFFNET_CACHE", str(tmp_path / "cache"))
    config = load_config(CONFIG, SMALL)
    run = train(config, tmp_path / "run", progress=False)
    history = run.metrics["history"]["val_loss"]
    assert history[-1] < history[0]  # one epoch of steps lowers the validation NLL
    model = kn.load(run.run_dir / "model.safetensors")
    device = model.circuit.slice(0).device_family
    assert device == build_device(config.circuit.device)  # the table, rebuilt from the checkpoint alone
    assert device.source["card"] == "bsim4_45nm"


def test_bad_tabulation_settings_fail_in_one_line_when_the_circuit_is_built():
    for override, message in [
        ("circuit.device.width_range=5", "width_range must be two numbers"),
        ("circuit.device.card=nowhere.lib", "unknown model card 'nowhere.lib'"),
    ]:
        config = load_config(CONFIG, [override])
        with pytest.raises(ConfigError, match=message):
            config.circuit.build()

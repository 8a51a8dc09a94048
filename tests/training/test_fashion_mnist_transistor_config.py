"""The shipped Fashion-MNIST transistor twins (issue 23): the same circuit on the BSIM4 table and on the ideal
law, with pixels and hidden nodes starting inside the supply rails that training keeps them within."""

from __future__ import annotations

from pathlib import Path

import torch

from kirchhoffnet.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "classify"
TABLE, IDEAL = CONFIGS / "fashion_mnist_bsim4.yaml", CONFIGS / "fashion_mnist_mosrelu.yaml"


def test_the_twins_differ_only_in_their_device():
    table, ideal = (load_config(path).model_dump(mode="json") for path in (TABLE, IDEAL))
    assert table["circuit"].pop("device")["card"] == "bsim4_45nm"
    assert ideal["circuit"].pop("device")["name"] == "MosRelu"
    table.pop("name"), ideal.pop("name")
    assert table == ideal


def test_every_node_of_a_black_or_white_image_starts_inside_the_rails():
    config = load_config(IDEAL)  # the MosRelu twin builds without ngspice; the circuit's nodes are the same
    circuit = config.circuit.build()
    rails = config.train.rails
    pixels = config.data.shape[1] * config.data.shape[2]
    images = torch.stack(
        [torch.zeros(pixels), torch.ones(pixels), torch.rand(pixels, generator=torch.Generator().manual_seed(0))]
    )
    state = circuit.input_state(images)  # (nodes, images): pixels encoded, hidden nodes per circuit.fill
    assert state.shape[0] == circuit.widths[0] > pixels  # hidden nodes too, not only the pixels
    assert rails.low < state.min() and state.max() < rails.high
    assert torch.allclose(state[:pixels], 0.1 + 0.8 * images.T)  # the encoding the docs state


def test_the_rails_penalty_outpulls_the_readout_before_a_node_reaches_the_supply():
    """The cross-entropy pulls a logit node's final voltage with at most readout.scale / encoding.scale per V per
    image (its gradient in a logit lies within ±1); the penalty pushes back with weight·2e·2/P at an excursion e at
    one of its P times. They balance at e* = P·scale / (4·weight·encoding.scale), which must lie well inside (a
    tenth of) the margin between the training rails and the 0-1 V supply, since held-out images spread further
    than training ones. At weight 100, e* = 0.28 V, and the trained table circuit's nodes reached -0.034 … 1.052 V
    on the 10,000 test images (experiments/rails_excursion.py)."""
    for path in (TABLE, IDEAL):
        config = load_config(path)
        rails, readout, encoding = config.train.rails, config.readout, config.circuit.encoding
        balance = rails.points * readout["scale"] / (4 * rails.weight * encoding.scale)
        assert balance < min(rails.low, 1.0 - rails.high) / 10, (path.name, balance)


def test_the_mosrelu_twin_starts_every_gain_inside_its_clamps_and_the_twomoon_tables_from_the_raw_draw():
    """Issue 23: kaiming drew every gain below gain_min, where it has no gradient; the twomoon table configs keep
    the raw uniform draw and the zero gradient past a clamp that their documented figures were trained with."""
    circuit = load_config(IDEAL).circuit.build()
    device = circuit.slice(0).device_family
    gain = circuit.slice(0).params.detach()[0].abs()
    assert device.gain_min < gain.min() and gain.max() < device.gain_max
    for name in ("twomoon_bsim4.yaml", "twomoon_bsim4_rails.yaml"):
        circuit = load_config(CONFIGS.parent / "flow2d" / name).circuit
        assert circuit.init_inside_clamps is False and circuit.device["clamp_gradient"] == "zero"
    for twin in (IDEAL, CONFIGS / "fashion_mnist_bsim4.yaml"):  # the classifiers train with the default, inward
        assert "clamp_gradient" not in load_config(twin).circuit.device

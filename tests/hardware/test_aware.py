"""Hardware-aware training: the die inside a step, exact gradients, and that it pays off."""

from __future__ import annotations

import copy

import pydantic
import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware import (
    HardwareAwareConfig,
    HardwareAwareTraining,
    Uniform,
    Variation,
    monte_carlo,
    mse,
    quantized,
)
from kirchhoffnet.hardware.variation import apply_die

from ..conftest import small_circuit


def network(gradient: kn.solve.GradientMethod = kn.solve.DEFAULT_GRADIENT) -> kn.Network:
    return kn.Network(small_circuit(num_nodes=5, slices=2), "last1", kn.Solver("rk4", step_size=0.1), gradient)


def test_the_model_is_restored_after_each_step_even_on_error():
    net = network()
    params = [s.params for s in net.circuit.slices]
    values = [p.detach().clone() for p in params]
    caps = [s.capacitance.clone() for s in net.circuit.slices]
    aware = HardwareAwareTraining(net, HardwareAwareConfig(edge=0.1, die=0.1, capacitance=0.1, bits=3))
    with pytest.raises(RuntimeError, match="inside the step"), aware.step():
        assert not torch.equal(net.circuit.slice(0).params, values[0])  # a die, quantized
        raise RuntimeError("inside the step")
    for piece, param, value, cap in zip(net.circuit.slices, params, values, caps, strict=True):
        assert type(piece) is kn.Slice
        assert piece.params is param and torch.equal(param, value)  # the optimizer's tensor, untouched
        assert torch.equal(piece.capacitance, cap)
    assert set(dict(net.named_parameters())) == {"circuit.slices.0.params", "circuit.slices.1.params"}


@pytest.mark.parametrize("gradient", [kn.Backprop(), kn.Adjoint()], ids=str)
def test_gradient_is_that_of_the_die_chained_to_the_trained_parameters(gradient):
    net = network(gradient)  # fixed-step rk4: both sides take the very same steps
    x = torch.randn(8, 3)
    aware = HardwareAwareTraining(net, HardwareAwareConfig(edge=0.1, die=0.1, capacitance=0.1), seed=3)
    with aware.step() as die:
        net(x).pow(2).sum().backward()
    assert die is not None
    fabricated = copy.deepcopy(net)
    apply_die(fabricated, die)
    fabricated.zero_grad()
    fabricated(x).pow(2).sum().backward()
    for k in range(2):
        chained = fabricated.circuit.slice(k).params.grad * die.params[k].float()  # ∂L/∂p = ∂L/∂p_die · factor
        assert torch.allclose(net.circuit.slice(k).params.grad, chained, rtol=1e-5, atol=1e-5)  # float32 rounding


def test_quantization_inside_a_step_is_the_quantized_model():
    net = network()
    x = torch.randn(8, 3)
    with torch.no_grad():
        expected = quantized(net, Uniform(3))(x)
        with HardwareAwareTraining(net, HardwareAwareConfig(bits=3)).step():
            inside = net(x)
    assert torch.equal(inside, expected)


def test_each_step_draws_a_new_die_reproducibly():
    net = network()
    config = HardwareAwareConfig(edge=0.05)
    first, second = HardwareAwareTraining(net, config, seed=9), HardwareAwareTraining(net, config, seed=9)
    dies = []
    for aware in (first, second):
        for _ in range(2):
            with aware.step() as die:
                dies.append(die.params[0])
    assert torch.equal(dies[0], dies[2]) and torch.equal(dies[1], dies[3]) and not torch.equal(dies[0], dies[1])
    with HardwareAwareTraining(net, HardwareAwareConfig()).step() as nothing:
        assert nothing is None


def test_training_with_injected_mismatch_beats_plain_training_under_monte_carlo():
    # Teacher–student: the targets are a sensitive circuit's own outputs, so plain training has
    # nothing to learn (the teacher is its optimum, gradient zero) and stays as sensitive as the
    # teacher. Training on random 5 % dies minimises the loss those dies give, which is the
    # Monte-Carlo objective, and finds parameters that keep it low.
    torch.manual_seed(0)
    teacher = kn.Network(small_circuit(num_nodes=5, slices=2, repeat=(1, 1)), "last1", kn.Solver("rk4", step_size=0.25))
    with torch.no_grad():
        for piece in teacher.circuit.slices:
            piece.params.mul_(2.0)  # large gains: currents that cancel at nominal, and mismatch that does not
        x = torch.rand(128, 3) * 2 - 1
        y = teacher(x)
    metric = mse(x, y)
    variation = Variation(edge=0.05, die=0.05)  # 5 % per device and 5 % per die
    plain = monte_carlo(teacher, metric, variation, trials=16, seed=1)

    student = copy.deepcopy(teacher)
    optimizer = torch.optim.Adam(student.parameters(), lr=0.01)
    aware = HardwareAwareTraining(student, HardwareAwareConfig(edge=0.05, die=0.05), seed=2)
    for _ in range(60):
        optimizer.zero_grad()
        with aware.step():
            torch.nn.functional.mse_loss(student(x), y).backward()
        optimizer.step()
    robust = monte_carlo(student, metric, variation, trials=16, seed=1)  # the same 16 dies
    assert plain.nominal == 0.0
    assert robust.mean < 0.75 * plain.mean, (robust.mean, plain.mean)  # measured: 0.055 vs 0.095


def test_config_refuses_unknown_keys_and_bad_values():
    assert HardwareAwareConfig(edge=0.05, bits=6).variation == Variation(edge=0.05)
    with pytest.raises(pydantic.ValidationError, match="sigma"):
        HardwareAwareConfig(sigma=0.05)
    with pytest.raises(pydantic.ValidationError, match="bits"):
        HardwareAwareConfig(bits=0)
    with pytest.raises(ConfigError, match="config must be a HardwareAwareConfig, got dict"):
        HardwareAwareTraining(network(), {"edge": 0.05})  # type: ignore[arg-type]

"""Gradient methods as objects: one default for every entry point, names only in files."""

from __future__ import annotations

import inspect
import re

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.config import SolverConfig
from kirchhoffnet.config.tasks import ClassifyConfig, DensityConfig, Flow2dConfig, MnistGenConfig, RegressionConfig
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.solve import DEFAULT_GRADIENT, GRADIENTS, gradient_method

from ..conftest import small_circuit


@pytest.mark.parametrize("entry", [kn.simulate, kn.simulate_log_density, kn.Flow, kn.Network], ids=lambda f: f.__name__)
def test_every_python_entry_point_defaults_to_the_one_default(entry):
    assert inspect.signature(entry).parameters["gradient"].default is DEFAULT_GRADIENT


@pytest.mark.parametrize("config", [Flow2dConfig, DensityConfig, RegressionConfig, ClassifyConfig, MnistGenConfig])
def test_every_task_config_defaults_to_the_one_default(config):
    assert config.model_fields["solver"].get_default(call_default_factory=True).build_gradient() == DEFAULT_GRADIENT
    assert SolverConfig().build_gradient() == DEFAULT_GRADIENT == kn.Backprop()


@pytest.mark.parametrize("gradient", ["adjoint", None, kn.Solver()])
def test_the_python_api_takes_objects_only(gradient):
    circuit = small_circuit()
    message = f"gradient must be kn.Backprop() or kn.Adjoint(), got {gradient!r}"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        kn.simulate(circuit, torch.zeros(2, 3), gradient=gradient)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        kn.Network(circuit, gradient=gradient)


def test_names_convert_to_the_objects_and_back():
    assert GRADIENTS == ("backprop", "adjoint")
    assert gradient_method("backprop") == gradient_method("backprop", seminorm=True) == kn.Backprop()
    assert gradient_method("adjoint", seminorm=True) == kn.Adjoint(seminorm=True)
    for method in (kn.Backprop(), kn.Adjoint(), kn.Adjoint(seminorm=True)):
        seminorm = getattr(method, "seminorm", False)
        assert gradient_method(method.name, seminorm) == method
    with pytest.raises(ConfigError, match="unknown gradient method 'magic'"):
        gradient_method("magic")

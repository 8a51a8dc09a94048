"""The sampler registry: solver aliases, what each score model supports, and that every entry keeps the contract."""

import pytest
import torch

from kirchhoffnet.diffusion.field import Guided, ScoreField
from kirchhoffnet.diffusion.samplers import SAMPLERS, Draw, implementation, resolve, sample, solver_names, supported
from kirchhoffnet.diffusion.score import ScoreModel, ScoreNet
from kirchhoffnet.diffusion.score_circuit.circuit import ScoreCircuit
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import ConfigError


def crossbar(num_classes: int = 0) -> ScoreModel:
    net = ScoreNet(num_classes=num_classes, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.3)
    return ScoreModel(net, VPSDE(0.1, 8.0))


def circuit(num_classes: int = 0) -> CircuitScoreModel:
    generator = torch.Generator().manual_seed(1)
    return CircuitScoreModel(
        ScoreCircuit(2, 5, 4, num_classes=num_classes, settle_steps=3, generator=generator), VPSDE(0.1, 8.0)
    )


def test_both_models_are_score_fields_with_their_solver_names():
    fields: list[ScoreField] = [crossbar(), circuit()]
    assert solver_names(fields[0]) == ("euler", "pf-ode", "analog", "analog-ode")
    assert solver_names(fields[1]) == ("pf-ode", "euler")
    assert resolve(fields[0], "pf-ode") == ("pf-ode", "euler")
    assert resolve(fields[1], "pf-ode") == ("pf-ode", "transient")  # the circuit's own integrator
    assert resolve(fields[1], "pf-ode/euler") == ("pf-ode", "euler")
    assert supported(fields[1]) == [("pf-ode", "transient"), ("reverse-sde", "euler"), ("pf-ode", "euler")]
    assert all(implementation(f, m) is not None for f in fields for m in supported(f))
    assert set(SAMPLERS) == {m for f in fields for m in supported(f)}


def test_unsupported_combinations_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"^the crossbar score model cannot sample with 'pf-ode/transient'"):
        sample(crossbar(), 4, "pf-ode/transient", steps=2)
    with pytest.raises(ConfigError, match=r"it supports: euler \(reverse-sde/euler\), pf-ode \(pf-ode/euler\), "):
        sample(crossbar(), 4, "reverse-sde/transient", steps=2)


@pytest.mark.parametrize("guidance", [0.0, 1.5])
def test_digital_euler_of_the_circuit_is_its_transient_to_rounding(guidance):
    model = circuit(num_classes=3)
    labels = torch.arange(30) % 4 - 1
    transient = sample(model, 30, "pf-ode", steps=25, seed=2, labels=labels, guidance=guidance)
    digital = sample(model, 30, "pf-ode/euler", steps=25, seed=2, labels=labels, guidance=guidance)
    torch.testing.assert_close(digital, transient, rtol=0, atol=1e-4)


def test_the_fused_crossbar_loop_and_the_generic_euler_keep_one_contract():
    """The same draw through the fused implementation and the generic one (the first that fits vs the last)."""
    model, labels = crossbar(num_classes=3), torch.arange(40) % 4 - 1
    for method in (("reverse-sde", "euler"), ("pf-ode", "euler")):
        fused, generic = SAMPLERS[method]
        assert implementation(model, method) is fused
        request = Draw(40, 30, seed=5, labels=labels, guidance=0.8)
        torch.testing.assert_close(fused.run(model, request)[0], generic.run(model, request)[0], rtol=1e-4, atol=1e-4)


def test_guidance_is_linear_in_the_score_for_both_fields():
    x, s = torch.randn(6, 2), torch.full((6,), 0.4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    for model in (crossbar(3), circuit(3)):
        x = x.to(torch.float64) if model.backend == "circuit" else x
        s = s.to(x.dtype)
        free = model.score(x, s, torch.full_like(labels, -1))
        expected = 1.7 * model.score(x, s, labels) - 0.7 * free
        torch.testing.assert_close(Guided(model, 0.7).score(x, s, labels), expected)

import itertools

import pytest
import torch

from kirchhoffnet.diffusion.analog import analog_sample, program_chip
from kirchhoffnet.diffusion.samplers import sample
from kirchhoffnet.diffusion.score import ScoreModel, ScoreNet
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import ConfigError, SolverError
from kirchhoffnet.rram.chip import Chip
from kirchhoffnet.rram.device import RRAMDevice
from kirchhoffnet.rram.loop import ClosedLoop, LoopSettings


def _model(num_classes: int = 0) -> ScoreModel:
    net = ScoreNet(num_classes=num_classes, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.5)
    return ScoreModel(net, VPSDE(0.1, 8.0))


@pytest.mark.parametrize(("num_classes", "guidance"), [(0, 0.0), (3, 2.0)])
def test_ideal_analog_ode_is_the_digital_probability_flow(num_classes, guidance):
    """Ideal devices + forward Euler on the same grid: the loop's equation is the digital step's."""
    model = _model(num_classes)
    labels = torch.tensor([0, 1, 2, -1] * 50) if num_classes else None
    settings = LoopSettings(steps=120, integration_time_s=2e-3)
    analog = analog_sample(model, 200, settings=settings, mode="ode", seed=4, labels=labels, guidance=guidance)
    digital = sample(model, 200, "pf-ode", steps=120, seed=4, labels=labels, guidance=guidance)
    # the loop works in physical seconds and float64 weights: agreement to float32 rounding per step
    torch.testing.assert_close(analog.samples, digital, rtol=1e-4, atol=1e-4)


def test_ideal_analog_sde_matches_the_digital_statistics():
    model = _model()
    settings = LoopSettings(steps=300)
    analog = analog_sample(model, 20_000, settings=settings, mode="sde", seed=1).samples
    digital = sample(model, 20_000, "euler", steps=300, seed=2)
    # two independent draws of 2e4 samples: standard errors ≈ 0.7 % of the spread
    torch.testing.assert_close(analog.mean(dim=0), digital.mean(dim=0), rtol=0, atol=0.03 * float(digital.std()))
    torch.testing.assert_close(analog.std(dim=0), digital.std(dim=0), rtol=0.03, atol=0)


def test_physical_time_constant_does_not_change_the_solution():
    """The loop equation is written in seconds; T only rescales time, so results are identical."""
    model = _model()
    fast = analog_sample(model, 100, settings=LoopSettings(steps=80, integration_time_s=1e-6), mode="ode").samples
    slow = analog_sample(model, 100, settings=LoopSettings(steps=80, integration_time_s=1.0), mode="ode").samples
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)


def test_programming_noise_changes_samples_and_a_chip_is_reproducible():
    model = _model()
    device = RRAMDevice(prog_noise=0.2)
    settings = LoopSettings(steps=50)
    one = analog_sample(model, 64, program_chip(model, device, seed=1), settings, "ode").samples
    again = analog_sample(model, 64, program_chip(model, device, seed=1), settings, "ode").samples
    other = analog_sample(model, 64, program_chip(model, device, seed=2), settings, "ode").samples
    assert torch.equal(one, again)
    assert not torch.allclose(one, other)


def test_read_noise_is_held_for_its_correlation_time():
    model = _model()
    chip = program_chip(model, RRAMDevice(read_noise=0.1))
    settings = LoopSettings(steps=100, read_noise_correlation_s=1e-3)  # = T: one read-noise draw per run
    loop = ClosedLoop(chip, lambda tau: (0.0, 0.0, 0.0), [(1.0, lambda tau: torch.zeros(1, 14))], settings)
    x = torch.randn(8, 2)
    first, later = loop.network(0.0, x), loop.network(0.5e-3, x)
    torch.testing.assert_close(first, later)  # same noise sample within the correlation time
    assert not torch.allclose(loop.network(1.5e-3, x), first)  # a new one after it


def test_crossbar_energy_matches_a_constant_state():
    """With a(τ) = b(τ) = g(τ) = 0 the state is frozen, so E = P(x) T exactly."""
    model = _model()
    chip = program_chip(model)
    settings = LoopSettings(steps=10)
    loop = ClosedLoop(chip, lambda tau: (0.0, 0.0, 0.0), [(1.0, lambda tau: torch.zeros(1, 14))], settings)
    x = torch.randn(5, 2)
    loop.run(x, stochastic=False)
    h1 = torch.relu(x @ chip.effective()[0][0].t() + chip.effective()[0][1])
    h2 = torch.relu(h1 @ chip.effective()[1][0].t() + chip.effective()[1][1])
    v = settings.voltage_per_unit_v
    power = sum(
        c.power_w(torch.cat([h, torch.ones(5, 1)], dim=1).double() * v)
        for c, h in zip(chip.crossbars, (x, h1, h2), strict=True)
    )
    assert loop.report.crossbar_energy_j == pytest.approx(float(power.mean()) * settings.integration_time_s, rel=1e-5)


def test_opamp_leak_and_saturation_act():
    model = _model()
    base = analog_sample(model, 64, settings=LoopSettings(steps=50), mode="ode").samples
    leaky = analog_sample(model, 64, settings=LoopSettings(steps=50, opamp_gain=2.0), mode="ode").samples
    clipped = analog_sample(model, 64, settings=LoopSettings(steps=50, saturation_v=1e-3), mode="ode")
    assert not torch.allclose(base, leaky)
    assert clipped.report.peak_hidden_v <= 1e-3 * (1 + 1e-6)


def test_loop_errors():
    model = _model()
    with pytest.raises(ConfigError, match="unknown analog mode 'langevin'; choose one of: ode, sde"):
        analog_sample(model, 4, mode="langevin")
    with pytest.raises(ConfigError, match="the analog loop needs a chip with at least one crossbar"):
        ClosedLoop(Chip([]), lambda tau: (0.0, 0.0, 0.0), [], LoopSettings())
    blown = ScoreModel(ScoreNet(), VPSDE(0.1, 8.0))
    with torch.no_grad():
        blown.net.layers[2].bias.fill_(1e38)
    with pytest.raises(SolverError, match="the analog loop's state became NaN or infinite"):
        analog_sample(blown, 4, settings=LoopSettings(steps=5), mode="ode")


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_the_loop_runs_a_chip_of_any_depth_as_the_network_it_holds(depth):
    """Ideal cells: the loop's network is layer L ∘ relu(· + drive) ∘ … ∘ layer 1, whatever L is."""
    generator = torch.Generator().manual_seed(depth)
    widths = [3] + [8] * (depth - 1) + [3]
    layers = [
        (torch.randn(b, a, generator=generator), torch.randn(b, generator=generator))
        for a, b in itertools.pairwise(widths)
    ]
    drive = torch.randn(8, generator=generator)
    loop = ClosedLoop(Chip(layers), lambda tau: (0.0, 1.0, 0.0), [(1.0, lambda tau: drive)], LoopSettings())
    x = torch.randn(5, 3, generator=generator)
    expected = x
    for k, (w, b) in enumerate(layers):
        expected = expected @ w.T + b
        if k < depth - 1:
            expected = torch.relu(expected + drive)
    torch.testing.assert_close(loop.network(0.0, x), expected, rtol=1e-4, atol=1e-4)

"""kn.circuit.Encoding: data as node voltages v = offset + scale·x, invisible to callers in data space."""

from __future__ import annotations

import math

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.circuit import Encoding
from kirchhoffnet.config import load_config
from kirchhoffnet.errors import CheckpointError, ConfigError
from kirchhoffnet.hardware import Noise, PhysicalDesign, simulate_noisy
from kirchhoffnet.models.flow import standard_normal_log_prob
from kirchhoffnet.solve._traced import traced_simulate
from tests.config.test_schema import TWOMOON

ENCODING = Encoding(offset=0.5, scale=0.12)  # the rails flow's: data around 0 → inside a 0–1 V supply


def _pair(device: str = "ShiftTanh2") -> tuple[kn.Circuit, kn.Circuit]:
    """The same float64 circuit with and without ENCODING (a 2-D flow's shape: 2 state nodes, 2 slices)."""
    torch.manual_seed(0)
    plain = kn.Circuit(kn.topology.fully_connect(3, (2, 2)), device, slices=2, times=(0.0, 0.5, 1.0), init="gauss")
    encoded = kn.Circuit(
        kn.topology.fully_connect(3, (2, 2)), device, slices=2, times=(0.0, 0.5, 1.0), encoding=ENCODING
    )
    encoded.load_state_dict(plain.state_dict())
    return plain.double(), encoded.double()


def _volts_normal() -> torch.distributions.Normal:
    """N(offset, scale²) per node in float64: where ENCODING puts standard-normal data."""
    return torch.distributions.Normal(torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.12, dtype=torch.float64))


def test_encode_decode_round_trip_and_values():
    x = torch.randn(7, 3, dtype=torch.float64)
    v = ENCODING.encode(x)
    torch.testing.assert_close(v, 0.5 + 0.12 * x, rtol=0, atol=0)
    torch.testing.assert_close(ENCODING.decode(v), x, rtol=1e-15, atol=1e-15)  # one rounding each way
    assert Encoding().identity and Encoding().encode(x) is x  # the default costs nothing


def test_log_det_is_the_jacobian_of_encode():
    """log|det ∂v/∂x| by autograd equals d·log(scale), and a Gaussian's density moves by exactly that."""
    x = torch.randn(4, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(ENCODING.encode, x)
    assert torch.logdet(jacobian).item() == pytest.approx(ENCODING.log_det(4), rel=1e-14)
    # x ~ N(0, I) in d = 4 ⇒ v ~ N(offset, scale² I): log p_volts(v) = log p_data(x) − d·log(scale), exactly.
    volts = _volts_normal().log_prob(ENCODING.encode(x)).sum()
    # rel 1e-12: (v − offset)/scale rounds x at 1e-16 relative, squared and summed
    assert volts.item() == pytest.approx(standard_normal_log_prob(x[None]).item() - 4 * math.log(0.12), rel=1e-12)


@pytest.mark.parametrize(
    ("offset", "scale", "message"),
    [
        (0.0, 0.0, r"^encoding scale must be positive \(volts per data unit\), got 0\.0$"),
        (0.0, -1.0, r"^encoding scale must be positive"),
        (math.nan, 1.0, r"^encoding offset must be a finite number, got nan$"),
        (0.0, math.inf, r"^encoding scale must be a finite number, got inf$"),
        ("0.5", 1.0, r"^encoding offset must be a finite number, got '0\.5'$"),
    ],
)
def test_bad_encodings_are_refused(offset, scale, message):
    with pytest.raises(ConfigError, match=message):
        Encoding(offset, scale)


@pytest.mark.parametrize(
    "solver",
    [
        {"method": "dopri5", "rtol": 1e-9, "atol": 1e-9, "integrator": "torchdiffeq"},
        {"method": "dopri5", "rtol": 1e-9, "atol": 1e-9, "integrator": "fused"},
        {"method": "rk4", "step_size": 0.05},
    ],
    ids=["torchdiffeq", "fused", "rk4"],
)
@pytest.mark.parametrize("gradient", [kn.Backprop(), kn.Adjoint()], ids=["backprop", "adjoint"])
def test_encoded_simulate_is_the_plain_simulate_of_the_voltages(solver, gradient):
    """simulate(encoded, x) = decode(simulate(plain, encode(x))), forward and reverse, and so are the gradients."""
    plain, encoded = _pair()
    x = torch.randn(6, 2, dtype=torch.float64)
    for reverse in (False, True):
        ours, _ = kn.simulate(encoded, x, solver=solver, gradient=gradient, reverse=reverse)
        theirs, _ = kn.simulate(plain, ENCODING.encode(x), solver=solver, gradient=gradient, reverse=reverse)
        torch.testing.assert_close(ours, ENCODING.decode(theirs), rtol=0, atol=1e-12)
        # The outputs move ~0.2 data units (~0.02 V) from the inputs: the equality is not that of an idle circuit.
        assert float((ours - x).abs().max().detach()) > 0.1
    (grad_ours,) = torch.autograd.grad(ours.square().sum(), encoded.slice(0).params)
    (grad_theirs,) = torch.autograd.grad(ENCODING.decode(theirs).square().sum(), plain.slice(0).params)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-8, atol=1e-10)


def test_traced_solve_decodes_like_the_eager_one():
    """The solve torch.export and torch.compile trace (called directly: exporting takes seconds)."""
    _, encoded = _pair()
    solver = kn.Solver("rk4", step_size=0.1)
    x = torch.randn(3, 2, dtype=torch.float64)
    traced, _ = traced_simulate(encoded, x, solver)
    torch.testing.assert_close(traced, kn.simulate(encoded, x, solver=solver)[0], rtol=0, atol=1e-12)


def test_flow_log_density_is_data_space():
    """The encoded flow's log p(x) is the change of variables through the voltages: the encoding's Jacobian at
    the data end cancels the decoding's at the base end, so ∫tr needs no d·log(scale) term."""
    plain, encoded = _pair()
    x = torch.randn(5, 2, dtype=torch.float64)
    solver = {"method": "dopri5", "rtol": 1e-10, "atol": 1e-10}
    v0, trace, _ = kn.solve.simulate_log_density(plain, ENCODING.encode(x), solver=solver, reverse=True)
    expected = standard_normal_log_prob(ENCODING.decode(v0)) - trace
    torch.testing.assert_close(kn.Flow(encoded, solver=solver).log_prob(x), expected, rtol=0, atol=1e-12)
    # An idle circuit (zero conductance) maps base to data unchanged: log p(x) = log N(x), whatever the encoding,
    # and the density of its node voltages is that minus d·log(scale).
    idle = kn.Circuit(kn.topology.fully_connect(3), "Conductance", init="zeros", encoding=ENCODING).double()
    log_p = kn.Flow(idle).log_prob(x)
    torch.testing.assert_close(log_p, standard_normal_log_prob(x), rtol=0, atol=1e-12)
    volts = _volts_normal().log_prob(ENCODING.encode(x)).sum(1)
    torch.testing.assert_close(log_p - ENCODING.log_det(2), volts, rtol=0, atol=1e-12)


def test_rails_see_the_encoded_voltages():
    """The rails penalty's slice ends are node voltages: inputs around 0 sit around the offset."""
    _, encoded = _pair()
    with kn.solve.recording_slice_ends() as ends:
        kn.simulate(encoded, torch.zeros(4, 2, dtype=torch.float64))
    torch.testing.assert_close(ends[0][0], torch.full((2, 4), 0.5, dtype=torch.float64), rtol=0, atol=0)


def test_checkpoint_keeps_the_encoding(tmp_path):
    _, encoded = _pair()
    flow = kn.Flow(encoded)
    kn.save(flow, tmp_path / "flow.safetensors")
    loaded = kn.load(tmp_path / "flow.safetensors")
    assert loaded.circuit.encoding == ENCODING
    x = torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(loaded.double().log_prob(x), flow.log_prob(x), rtol=0, atol=1e-12)
    plain, _ = _pair()
    assert "encoding" not in plain.spec()  # checkpoints without an encoding are written (and read) as before
    spec = encoded.spec() | {"encoding": {"offset": 0.5, "scale": -2.0}}
    with pytest.raises(CheckpointError, match=r"^circuit spec\.encoding: encoding scale must be positive"):
        kn.Circuit.from_spec(spec, encoded.state_dict())


def test_config_builds_the_encoding_and_refuses_bad_values():
    config = load_config(TWOMOON, ["circuit.encoding={offset: 0.5, scale: 0.12}"])
    assert config.circuit.build().encoding == ENCODING
    assert load_config(TWOMOON).circuit.build().encoding.identity
    with pytest.raises(ConfigError, match=r"^circuit\.encoding\.scale: must be > 0\.0, got 0"):
        load_config(TWOMOON, ["circuit.encoding={offset: 0.5, scale: 0}"])
    with pytest.raises(ConfigError, match=r"^circuit\.encoding\.gain: unknown key; valid keys here: offset, scale"):
        load_config(TWOMOON, ["circuit.encoding={gain: 2}"])


def test_noisy_simulation_encodes_and_decodes_like_simulate():
    """The noise SDE runs on node voltages: without noise, its Euler solve of the encoded circuit is the plain
    circuit's on encoded inputs, decoded, and both approach kn.simulate's data-space answer."""
    plain, encoded = _pair()
    x = torch.randn(4, 2, dtype=torch.float64)
    off = Noise(thermal=False)
    ours, waves = simulate_noisy(encoded, x, PhysicalDesign(), off, dt=0.01)
    theirs, _ = simulate_noisy(plain, ENCODING.encode(x), PhysicalDesign(), off, dt=0.01)
    torch.testing.assert_close(ours, ENCODING.decode(theirs), rtol=0, atol=1e-12)
    torch.testing.assert_close(waves[0][1][0], ENCODING.encode(x), rtol=0, atol=0)  # waveforms in volts
    with torch.no_grad():
        exact, _ = kn.simulate(encoded, x, solver=kn.Solver(rtol=1e-10, atol=1e-10))
    # Euler at dt = 0.01 is first order: observed 4e-5 data units from the exact solve, against 0.2 of motion
    assert float((ours - exact).abs().max().detach()) < 1e-3

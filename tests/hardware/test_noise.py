"""Thermal and read noise: the kT/C law, equipartition, the noiseless limit, reproducibility."""

from __future__ import annotations

import math

import pytest
import scipy.linalg
import torch

import kirchhoffnet as kn
from kirchhoffnet.errors import ConfigError, SolverError
from kirchhoffnet.hardware import Noise, PhysicalDesign, noisy_outputs, simulate_noisy
from kirchhoffnet.hardware.units import BOLTZMANN_J_PER_K

from ..conftest import small_circuit


def passive(edges: list[tuple[int, int]], conductances: list[float], capacitance, duration: float) -> kn.Circuit:
    piece = kn.Slice(torch.tensor(edges).T, "Conductance", capacitance=capacitance, params=torch.tensor([conductances]))
    return kn.Circuit([piece], times=(0.0, duration)).double()


def test_rc_node_reaches_kt_over_c():
    g, c, T = 1.0, 2.0, 8.0
    design = PhysicalDesign(capacitance_f=1e-15, voltage_v=0.5)
    circuit = passive([(1, 0)], [g], c, T)
    v, _ = simulate_noisy(circuit, torch.zeros(20000, 1, dtype=torch.float64), design, dt=0.01, seed=1)
    variance_v2 = float(v.var()) * design.voltage_v**2
    kt_over_c = BOLTZMANN_J_PER_K * 300.0 / (design.capacitance_f * c)
    # OU transient 1 − e^{−2gT/c}; 20000 samples give a 1 % standard error, Euler–Maruyama a +0.25 % bias.
    assert variance_v2 == pytest.approx(kt_over_c * (1 - math.exp(-2 * g * T / c)), rel=0.05)
    assert abs(float(v.mean())) < 5 * math.sqrt(float(v.var()) / 20000)  # zero mean, 5 standard errors


def test_passive_network_reaches_equipartition():
    # Any passive RC network settles to the covariance kT·diag(1/C), whatever its conductances —
    # but only if every edge carries its own noise source (per-node noise would not).
    edges = [(1, 0), (2, 0), (3, 0), (1, 2), (2, 3)]
    g = torch.tensor([1.0, 0.5, 2.0, 1.5, 0.7], dtype=torch.float64)
    caps = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    design = PhysicalDesign(capacitance_f=1e-16)
    eps = design.thermal_epsilon
    incidence = torch.zeros(3, 5, dtype=torch.float64)  # +1 at the destination, −1 at the source
    for e, (src, dst) in enumerate(edges):
        if dst:
            incidence[dst - 1, e] += 1.0
        if src:
            incidence[src - 1, e] -= 1.0
    inv_c = torch.diag(1 / caps)
    drift = inv_c @ incidence @ torch.diag(g) @ incidence.T  # dv = −A v dt + noise
    diffusion = 2 * eps * inv_c @ incidence @ torch.diag(g) @ incidence.T @ inv_c
    # The model's continuous-time stationary covariance solves A P + P Aᵀ = Q; it is ε·C⁻¹.
    stationary = torch.from_numpy(scipy.linalg.solve_continuous_lyapunov(drift.numpy(), diffusion.numpy()))
    assert torch.allclose(stationary, eps * inv_c, rtol=1e-10, atol=1e-12 * eps)

    # The simulation must match the exact covariance of its Euler–Maruyama recursion after n steps.
    dt, steps = 0.01, 400
    step = torch.eye(3, dtype=torch.float64) - dt * drift
    expected = torch.zeros(3, 3, dtype=torch.float64)
    for _ in range(steps):
        expected = step @ expected @ step.T + dt * diffusion
    piece = kn.Slice(torch.tensor(edges).T, "Conductance", capacitance=caps, params=g[None])
    circuit = kn.Circuit([piece], times=(0.0, dt * steps)).double()
    v, _ = simulate_noisy(circuit, torch.zeros(10000, 3, dtype=torch.float64), design, dt=dt, seed=2)
    scale = torch.sqrt(expected.diagonal()[:, None] * expected.diagonal()[None, :])
    # 10000 samples: standard error ≈ 1.4 % of scale; allow 5 standard errors.
    assert ((torch.cov(v.T) - expected).abs() / scale).max() < 0.07


def test_without_noise_euler_converges_to_the_ode_solution():
    circuit = small_circuit(num_nodes=4, slices=2).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    with torch.no_grad():
        exact, _ = kn.simulate(circuit, x, solver=kn.Solver(rtol=1e-10, atol=1e-10))
    off = Noise(thermal=False)
    coarse, fine = (simulate_noisy(circuit, x, PhysicalDesign(), off, dt=dt)[0] for dt in (0.02, 0.01))
    errors = [float((v - exact).abs().max()) for v in (coarse, fine)]
    assert errors[1] == pytest.approx(errors[0] / 2, rel=0.15)  # Euler–Maruyama is first order without noise
    extrapolated = 2 * fine - coarse  # Richardson: cancels the first-order term, if the drift is the ODE's
    assert float((extrapolated - exact).abs().max()) < 0.1 * errors[1]


def test_read_noise_scales_each_device_current_per_inference():
    # RC with a current factor 1 + σξ frozen over the run: log(v_T/v_0) = −(1 + σξ)·gT/c.
    circuit = passive([(1, 0)], [1.0], 1.0, 1.0)
    v, _ = simulate_noisy(
        circuit, torch.ones(4000, 1, dtype=torch.float64), PhysicalDesign(), Noise(thermal=False, read=0.1), dt=1e-3
    )
    log_ratio = torch.log(v[:, 0])
    assert float(log_ratio.std()) == pytest.approx(0.1, rel=0.05)  # 1.1 % standard error of a std estimate
    assert float(log_ratio.mean()) == pytest.approx(-1.0, abs=0.01)  # 3 standard errors + Euler bias 5e-4


def test_noise_is_reproducible_by_seed_and_shrinks_with_capacitance():
    circuit = small_circuit(num_nodes=4, slices=2).double()
    x = torch.randn(64, 3, dtype=torch.float64)
    clean, _ = simulate_noisy(circuit, x, PhysicalDesign(), Noise(thermal=False), dt=0.01)

    def rms(capacitance_f: float, seed: int) -> float:
        v, _ = simulate_noisy(circuit, x, PhysicalDesign(capacitance_f=capacitance_f), dt=0.01, seed=seed)
        return float((v - clean).pow(2).mean().sqrt())

    assert rms(1e-14, 0) == rms(1e-14, 0)
    assert rms(1e-14, 0) != rms(1e-14, 1)
    # Small noise propagates linearly, so its RMS effect scales as sqrt(kT/C): 100× C → 10× less.
    assert rms(1e-14, 0) / rms(1e-12, 0) == pytest.approx(10.0, rel=0.05)


def test_noisy_outputs_of_a_network_go_through_its_readout():
    net = kn.Network(small_circuit(num_nodes=5), "last2")
    out = noisy_outputs(net, torch.randn(6, 3), PhysicalDesign(), dt=0.05, points_per_slice=3)
    assert out.shape == (6, 2)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Noise(read=2.0), r"read noise is a relative standard deviation in \[0, 1\], got 2.0"),
        (lambda: Noise(excess_factor=0.0), "excess_factor must be finite and positive, got 0.0"),
        (
            lambda: simulate_noisy(small_circuit(), torch.zeros(1, 3), PhysicalDesign(), dt=0.0),
            "dt must be a positive step in normalised time, got 0.0",
        ),
        (
            lambda: simulate_noisy(small_circuit(), torch.zeros(1, 3), PhysicalDesign(), points_per_slice=1),
            "points_per_slice must be at least 2, got 1",
        ),
        (lambda: noisy_outputs(torch.nn.Linear(1, 1), torch.zeros(1, 1), PhysicalDesign()), "expected a Circuit"),
    ],
)
def test_noise_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_noise_that_swamps_the_signal_is_named_when_it_blows_up():
    """At C = 1e-300 F the kT/C noise overflowed and the error blamed dt and the device gains."""
    with pytest.raises(SolverError, match=r"thermal noise ε = kT/\(C₀V₀²\) = 4\.14e\+279 is above the signal's scale"):
        simulate_noisy(small_circuit(), torch.zeros(4, 3), PhysicalDesign(capacitance_f=1e-300), dt=0.01)

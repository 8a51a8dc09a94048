"""Monte-Carlo over dies: exact nominal at zero σ, reproducible seeds, the statistics of a die."""

from __future__ import annotations

import math

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.data import sample_toy
from kirchhoffnet.errors import ConfigError, SolverError
from kirchhoffnet.hardware import Metric, Variation, flow_nll, monte_carlo, mse, perturbed, sigma_sweep

from ..conftest import small_circuit


def regression_setup() -> tuple[kn.Network, Metric]:
    net = kn.Network(small_circuit(num_nodes=5, slices=2), "last1", kn.Solver("rk4", step_size=0.1))
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    return net, mse(x, x[:, :1] * 0.3)


@pytest.mark.parametrize("kind", ["edge", "die", "capacitance", "all"])
def test_zero_variation_reproduces_the_nominal_metric_exactly(kind):
    net, metric = regression_setup()
    result = monte_carlo(net, metric, Variation.of(kind, 0.0), trials=3, seed=5)
    assert result.values == [result.nominal] * 3  # bit-for-bit: every factor is exactly 1
    assert result.std == 0.0 and result.failed == 0


def test_zero_variation_on_an_original_flow(original_dir):
    flow = kn.compat.load_original(original_dir("twomoon"))
    metric = flow_nll(torch.from_numpy(sample_toy("twomoon", 200, seed=1)))
    result = monte_carlo(flow, metric, Variation(), trials=2)
    assert result.values == [metric(flow)] * 2


def test_a_fixed_seed_gives_identical_monte_carlo():
    net, metric = regression_setup()
    variation = Variation(edge=0.05, die=0.02, capacitance=0.03)
    first = monte_carlo(net, metric, variation, trials=4, seed=11, threshold=1.0)
    again = monte_carlo(net, metric, variation, trials=4, seed=11, threshold=1.0)
    other = monte_carlo(net, metric, variation, trials=4, seed=12, threshold=1.0)
    assert first.to_dict() == again.to_dict()
    assert first.values != other.values
    assert len(set(first.values)) == 4  # every die differs


def test_trials_do_not_depend_on_how_many_are_run():
    net, metric = regression_setup()
    variation = Variation(edge=0.1)
    assert (
        monte_carlo(net, metric, variation, trials=2, seed=3).values
        == (monte_carlo(net, metric, variation, trials=4, seed=3).values[:2])
    )


def test_a_die_has_the_requested_statistics():
    circuit = kn.Circuit(kn.topology.fully_connect(6, (20, 20)), "ShiftTanh2", slices=2, init="ones")
    nominal = circuit.slice(0).params.detach().clone()
    die = perturbed(circuit, Variation(edge=0.1), 0)
    ratio = die.slice(0).params.detach() / nominal
    # 1200 draws per row: the sample std of N(1, 0.1²) lies within 0.1·(1 ± 5/√(2·1200)) with overwhelming odds.
    assert ratio.std().item() == pytest.approx(0.1, rel=0.1)
    assert torch.equal(circuit.slice(0).params.detach(), nominal)  # the trained model is untouched

    shifted = perturbed(circuit, Variation(die=0.1), 1)
    rows = [shifted.slice(k).params.detach() / circuit.slice(k).params.detach() for k in range(2)]
    for row in range(3):  # one global factor per parameter row, shared by every edge and slice
        assert torch.allclose(rows[0][row], rows[0][row, 0].expand(rows[0].shape[1]), rtol=1e-6)
        assert torch.allclose(rows[1][row], rows[0][row, 0].expand(rows[1].shape[1]), rtol=1e-6)

    caps = perturbed(circuit, Variation(capacitance=0.2), 2)
    assert torch.equal(caps.slice(0).capacitance, caps.slice(1).capacitance)  # the same physical capacitors
    assert not torch.equal(caps.slice(0).capacitance, circuit.slice(0).capacitance)


def test_yield_counts_dies_that_meet_the_threshold():
    net, metric = regression_setup()
    result = monte_carlo(net, metric, Variation(edge=0.2), trials=6, seed=0)
    threshold = sorted(result.values)[3]  # 4 of 6 dies have an error at or below it
    assert monte_carlo(net, metric, Variation(edge=0.2), trials=6, seed=0, threshold=threshold).yield_fraction == (
        pytest.approx(4 / 6)
    )


def test_a_die_whose_solve_fails_counts_as_failed():
    def explode(model):
        raise SolverError("slice 0 failed")

    result = monte_carlo(
        kn.Network(small_circuit()), Metric("m", explode), Variation(), trials=2, nominal=0.5, threshold=1
    )
    assert result.failed == 2 and result.values == [math.inf, math.inf] and result.yield_fraction == 0.0
    assert result.to_dict()["values"] == [None, None]  # JSON has no infinity


def test_sweeps_reuse_the_same_random_numbers():
    net, metric = regression_setup()
    small, large = sigma_sweep(net, metric, [0.01, 0.02], trials=3, seed=4)
    assert small.nominal == large.nominal
    # Common random numbers: doubling σ doubles every die's deviation, so per-die metric shifts are
    # nearly proportional (metric is smooth); independent draws would scatter them.
    shift_small = [v - small.nominal for v in small.values]
    shift_large = [v - large.nominal for v in large.values]
    for a, b in zip(shift_small, shift_large, strict=True):
        assert b == pytest.approx(2 * a, rel=0.3)  # linear response up to second-order terms at σ ≤ 2 %


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Variation(edge=-0.1), r"variation edge is a relative standard deviation in \[0, 1\], got -0.1"),
        (lambda: Variation(capacitance=float("nan")), "variation capacitance is a relative standard deviation"),
        (
            lambda: Variation.of("wafer", 0.1),
            "unknown variation kind 'wafer'; choose one of: all, capacitance, die, edge",
        ),
    ],
)
def test_variation_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_trials_must_be_positive():
    net, metric = regression_setup()
    with pytest.raises(ConfigError, match="trials must be a positive integer, got 0"):
        monte_carlo(net, metric, Variation(), trials=0)


def test_a_die_of_a_large_circuit_with_a_sparse_kernel_is_a_copy():
    # 60 state nodes: past the dense limit, the cached KCL kernel holds CSR tensors, which a
    # deep copy of the model (a die, a quantized model) must not try to copy.
    circuit = kn.Circuit(kn.topology.random_graph(61, 200, seed=0), "ShiftTanh2", times=(0.0, 0.2))
    net = kn.Network(circuit, "last3", kn.Solver("rk4", step_size=0.1))
    x = torch.randn(4, 60)
    nominal = net(x)  # builds and caches the kernel
    die = perturbed(net, Variation(edge=0.1), generator=0)
    assert not torch.equal(die(x), nominal)
    assert torch.equal(net(x), nominal)  # the original is untouched

"""Quantization: the grid, lookup tables, convergence to the float model, straight-through gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.data import sample_toy
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware import LookupTable, Uniform, flow_nll, quantization_sweep, quantized, straight_through
from kirchhoffnet.hardware.quantize import quantize_params, resolve_scheme

from ..conftest import small_circuit

NAMES = ("gain_src", "gain_dst", "shift")


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
def test_uniform_grid_has_2_to_the_b_levels_and_half_step_error(bits):
    params = torch.randn(3, 500, dtype=torch.float64)
    q = quantize_params(params, NAMES, Uniform(bits))
    for row, qrow in zip(params, q, strict=True):
        step = (row.max() - row.min()) / (2**bits - 1)
        assert len(torch.unique(qrow)) <= 2**bits
        assert (qrow - row).abs().max() <= step / 2 + 1e-12  # nearest level: at most half a step away
        assert qrow.min() == row.min() and qrow.max() == row.max()  # the grid spans the row exactly


def test_quantization_error_halves_with_each_bit():
    params = torch.randn(3, 4000, dtype=torch.float64)
    errors = [float((quantize_params(params, NAMES, Uniform(b)) - params).pow(2).mean().sqrt()) for b in (6, 7, 8, 9)]
    for coarse, fine in itertools.pairwise(errors):
        assert fine / coarse == pytest.approx(0.5, rel=0.1)  # uniform error ≈ step/√12 for fine grids


def test_high_bit_counts_converge_to_the_float_model():
    net = kn.Network(small_circuit(num_nodes=5, slices=2), None, kn.Solver("rk4", step_size=0.05))
    x = torch.randn(16, 3)
    with torch.no_grad():
        reference = net(x)
        gaps = [float((quantized(net, Uniform(b))(x) - reference).abs().max()) for b in (4, 8, 12, 16)]
    assert gaps[-1] < 1e-3  # 16 bits: parameters within ~1e-5 of float
    assert gaps == sorted(gaps, reverse=True)  # each finer grid is closer


def test_quantized_nll_of_an_original_flow_converges(original_dir):
    flow = kn.compat.load_original(original_dir("twomoon"))
    metric = flow_nll(torch.from_numpy(sample_toy("twomoon", 300, seed=1)))
    coarse, fine = quantization_sweep(flow, metric, [3, 12], "uniform")
    assert coarse["value"] > fine["value"]
    assert fine["value"] == pytest.approx(fine["nominal"], abs=2e-3)  # 12 bits: NLL within 0.002 nats of float


def test_lookup_table_snaps_to_the_nearest_level():
    table = LookupTable({"gain_src": (0.0, 1.0, -1.0), "gain_dst": (0.5,), "shift": (-0.2, 0.2)})
    params = torch.tensor([[0.4, 0.6, -3.0], [9.0, -9.0, 0.0], [0.05, -0.01, 0.3]])
    expected = torch.tensor([[0.0, 1.0, -1.0], [0.5, 0.5, 0.5], [0.2, -0.2, 0.2]])
    assert torch.equal(quantize_params(params, NAMES, table), expected)


def test_fitted_lookup_table_is_exact_when_it_has_enough_levels():
    circuit = small_circuit(num_nodes=4, slices=2, repeat=(1, 1))  # 24 edges per slice
    table = LookupTable.fit(circuit, bits=6)  # 64 levels ≥ 48 values per parameter name
    same = quantized(circuit, table)
    for k in range(2):
        assert torch.equal(same.slice(k).params, circuit.slice(k).params)
    coarse = LookupTable.fit(circuit, bits=2)
    assert all(len(levels) == 4 for levels in coarse.levels.values())


def test_fitted_table_beats_the_uniform_grid_on_heavy_tails():
    # Lloyd–Max puts its levels where the values are; a uniform grid spends them on two outliers.
    row = torch.cat([torch.randn(2000, dtype=torch.float64) * 0.1, torch.tensor([-8.0, 8.0], dtype=torch.float64)])
    params = row.expand(3, -1)
    circuit = kn.Circuit(kn.topology.fully_connect(2, (1001, 1001)), "ShiftTanh2", init="zeros")
    circuit.slice(0).params.data = params.float().clone()
    table = LookupTable.fit(circuit, bits=3)
    error = {
        s.describe(): float((quantize_params(params, NAMES, s) - params).pow(2).mean()) for s in (Uniform(3), table)
    }
    assert error[table.describe()] < 0.1 * error[Uniform(3).describe()]


def test_straight_through_passes_the_gradient_unchanged():
    params = torch.randn(3, 10, requires_grad=True)
    out = straight_through(params, NAMES, Uniform(2))
    assert torch.equal(out.detach(), quantize_params(params, NAMES, Uniform(2)))
    (out * torch.arange(10.0)).sum().backward()
    assert torch.equal(params.grad, torch.arange(10.0).expand(3, 10))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Uniform(0), "bits must be an integer from 1 to 24, got 0"),
        (lambda: Uniform(25), "bits must be an integer from 1 to 24, got 25"),
        (lambda: Uniform(True), "bits must be an integer from 1 to 24, got True"),
        (lambda: LookupTable({"gain": ()}), "lookup table for 'gain' must hold finite values"),
        (lambda: resolve_scheme("log", 4), "unknown quantization scheme 'log'; choose one of: lut, uniform"),
        (lambda: resolve_scheme("uniform", None), "quantization scheme 'uniform' needs a number of bits"),
        (lambda: resolve_scheme("lut", 4), "the 'lut' scheme is fitted to a model"),
        (
            lambda: quantize_params(torch.zeros(3, 2), NAMES, LookupTable({"gain": (1.0,)})),
            "unknown parameter in the lookup table 'gain_src'; choose one of: gain",
        ),
    ],
)
def test_quantization_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()

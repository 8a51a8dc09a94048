"""A slice keeps the dtype of the tensors it is given, and a solve computes in its input's dtype."""

from __future__ import annotations

import math

import pytest
import torch

import kirchhoffnet as kn

EDGES = kn.topology.fully_connect(3)


def test_float64_parameters_and_capacitance_are_kept_exactly():
    params = torch.rand(3, EDGES.shape[1], dtype=torch.float64)
    cap = torch.tensor([0.1, 0.3], dtype=torch.float64)  # neither is a float32 value
    piece = kn.Slice(EDGES, params=params, capacitance=cap)
    assert piece.params.dtype == piece.capacitance.dtype == torch.float64
    assert torch.equal(piece.params, params) and torch.equal(piece.capacitance, cap)


def test_one_float64_tensor_sets_the_slice_dtype():
    assert kn.Slice(EDGES, params=torch.rand(3, EDGES.shape[1], dtype=torch.float64)).capacitance.dtype == torch.float64
    assert kn.Slice(EDGES, capacitance=torch.ones(2, dtype=torch.float64)).params.dtype == torch.float64
    assert kn.Circuit(EDGES, capacitance=torch.ones(2, dtype=torch.float64)).slice(0).params.dtype == torch.float64


def test_without_tensors_the_slice_takes_the_default_dtype():
    piece = kn.Slice(EDGES, capacitance=2.0)
    assert piece.params.dtype == piece.capacitance.dtype == torch.get_default_dtype()


def test_mixed_dtypes_are_refused():
    params = torch.rand(3, EDGES.shape[1], dtype=torch.float64)
    with pytest.raises(kn.errors.ConfigError, match=r"params are torch\.float64 but capacitance is torch\.float32"):
        kn.Slice(EDGES, params=params, capacitance=torch.ones(2))


def test_a_float64_slice_solves_in_float64():
    # RC decay with g = 0.1, which float32 rounds by 1.5e-9: off by 4e-9 V at t = 3.
    piece = kn.Slice([[1], [0]], "Conductance", params=torch.tensor([[0.1]], dtype=torch.float64))
    circuit = kn.Circuit([piece], times=(0.0, 3.0))
    v0 = torch.ones(1, 1, dtype=torch.float64)
    v, _ = kn.simulate(circuit, v0, solver=kn.Solver(rtol=1e-12, atol=1e-12))
    assert abs(float(v.detach()) - math.exp(-0.3)) < 1e-11


def test_a_float64_checkpoint_stays_float64():
    circuit = kn.Circuit(EDGES, slices=2).double()
    again = kn.Circuit.from_spec(circuit.spec(), circuit.state_dict())
    assert {t.dtype for t in again.state_dict().values() if t.is_floating_point()} == {torch.float64}

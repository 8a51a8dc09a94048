"""The density-matching targets: the paper's formulas and their normalisers."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.integrate import quad

from kirchhoffnet.data.potentials import log_normalizer, potential
from kirchhoffnet.errors import ConfigError


def test_u1_values_from_the_formula():
    # On the ring |z| = 2 at z = (2, 0): the ring term vanishes, and the two bumps give
    # -log(1 + exp(-0.5 (4/0.6)^2)).
    z = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    expected_first = -math.log(1 + math.exp(-0.5 * (4 / 0.6) ** 2))
    expected_second = -math.log(2 * math.exp(-0.5 * (2 / 0.6) ** 2))
    torch.testing.assert_close(potential("U1")(z), torch.tensor([expected_first, expected_second], dtype=torch.float64))


def test_u2_normaliser_against_a_one_dimensional_integral():
    # exp(-U2) is a Gaussian of width 0.4 in z2 for every z1, times the wall exp(-(z1/4.5)^10 / 2):
    # Z = 0.4 sqrt(2 pi) ∫ exp(-(z1/4.5)^10 / 2) dz1, an independent check of the 2-D quadrature.
    wall, _ = quad(lambda t: math.exp(-0.5 * (t / 4.5) ** 10), -10, 10, epsabs=1e-12)
    assert log_normalizer("U2") == pytest.approx(math.log(0.4 * math.sqrt(2 * math.pi) * wall), abs=1e-6)


@pytest.mark.parametrize("name", ["U1", "U2", "U3", "U4"])
def test_normalisers_converge(name):
    # Doubling the grid and widening the box changes log Z by less than 1e-6: the quadrature has converged.
    assert log_normalizer(name, extent=8.0, points=1201) == pytest.approx(log_normalizer(name, 10.0, 2001), abs=1e-6)


def test_unknown_potential():
    with pytest.raises(ConfigError, match=r"unknown potential 'U7'; choose one of: U1, U2, U3, U4"):
        potential("U7")

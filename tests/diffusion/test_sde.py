import pytest
import torch
from scipy.integrate import quad

from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import ConfigError


@pytest.mark.parametrize("s", [0.0, 0.01, 0.3, 1.0])
def test_integrated_beta_is_the_integral_of_beta(s):
    sde = VPSDE(0.05, 7.0)
    exact = quad(lambda u: float(sde.beta(torch.tensor(u, dtype=torch.float64))), 0.0, s)[0]
    assert float(sde.integrated_beta(torch.tensor(s, dtype=torch.float64))) == pytest.approx(
        exact, rel=1e-12, abs=1e-15
    )


def test_marginal_solves_the_moment_odes():
    """m' = −½ β m and (σ²)' = β (1 − σ²) for the VP-SDE; checked by central differences."""
    sde = VPSDE(0.1, 20.0)
    s = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    (m_hi, sd_hi), (m_lo, sd_lo), (m, sd) = sde.marginal(s + h), sde.marginal(s - h), sde.marginal(s)
    # central differences: error O(h²) ≈ 1e-12 times the third derivative, far below 1e-7
    torch.testing.assert_close((m_hi - m_lo) / (2 * h), -0.5 * sde.beta(s) * m, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close((sd_hi**2 - sd_lo**2) / (2 * h), sde.beta(s) * (1 - sd**2), rtol=1e-7, atol=1e-9)


def test_variance_is_preserved_for_unit_variance_data():
    sde = VPSDE()
    m, sd = sde.marginal(torch.linspace(0, 1, 11, dtype=torch.float64))
    torch.testing.assert_close(m**2 + sd**2, torch.ones(11, dtype=torch.float64), rtol=0, atol=1e-14)


def test_scaled_multiplies_beta():
    sde = VPSDE(0.001, 0.5).scaled(2.0)
    assert (sde.beta_min, sde.beta_max) == (0.002, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beta_min": 0.0}, "beta_min must be a positive number, got 0"),
        ({"beta_min": 2.0, "beta_max": 1.0}, r"beta_max must be >= beta_min = 2.0, got 1.0"),
        ({"s_min": 1.0}, r"s_min must lie in \(0, 1\), got 1.0"),
    ],
)
def test_bad_schedules_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        VPSDE(**kwargs)

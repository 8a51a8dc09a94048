import numpy as np
import pytest
import torch
from scipy.stats import norm

from kirchhoffnet.data.points import sample_ring
from kirchhoffnet.diffusion.metrics import kl_2d, kl_pooled
from kirchhoffnet.errors import ConfigError, DataError


def test_identical_samples_have_zero_kl():
    x = sample_ring(2000, seed=3)
    assert kl_pooled(x, x) == pytest.approx(0.0, abs=1e-12)
    assert kl_2d(x, x) == pytest.approx(0.0, abs=1e-12)


def test_pooled_kl_matches_the_binned_kl_of_two_gaussians():
    """Generated N(0.3, 1), reference N(0, 1): the binned KL follows from the normal CDF."""
    rng = np.random.default_rng(0)
    n = 400_000
    generated, reference = rng.normal(0.3, 1.0, (n, 2)), rng.normal(0.0, 1.0, (n, 2))
    edges = np.linspace(-4, 4, 51)
    p, q = np.diff(norm.cdf(edges, 0.3)), np.diff(norm.cdf(edges))
    p, q = p / p.sum(), q / q.sum()
    exact = float(np.sum(p * np.log(p / q)))  # ≈ 0.045, close to the continuous 0.3²/2
    # sampling noise of the estimate: std ≈ √(Var_p[log p/q] / n) ≈ √(0.09 / 8e5) ≈ 3.4e-4 per side; 2e-3 ≈ 4σ
    assert kl_pooled(generated, reference) == pytest.approx(exact, abs=2e-3)


def test_kl_is_generated_relative_to_reference():
    """Generated mass where the reference has none is what the metric punishes (empty bins get 1e-10)."""
    reference = np.zeros((1000, 2))
    generated = np.concatenate([np.zeros((990, 2)), np.full((10, 2), 2.0)])
    # 1 % of the mass in a bin of reference mass 1e-10, 99 % where the reference has all of it
    expected = 0.99 * np.log(0.99) + 0.01 * np.log(0.01 / 1e-10)
    assert kl_pooled(generated, reference) == pytest.approx(expected, rel=1e-6)  # only the 1e-10 terms differ


def test_ring_noise_floor_and_thick_ring():
    a, b = sample_ring(10_000, seed=1), sample_ring(10_000, seed=2)
    assert kl_pooled(a, b) < 0.002  # the metric's noise floor on 10,000 samples (issue: ~0.001)
    assert kl_pooled(sample_ring(10_000, seed=3, thickness=0.12), b) > 0.1  # 3× too thick is obvious


@pytest.mark.parametrize(
    ("generated", "match"),
    [
        (torch.full((5, 2), float("nan")), "generated samples holds 10 NaN or infinite values"),
        (torch.zeros(5), r"generated samples must be a non-empty \(N, D\) array, got shape \(5,\)"),
        (torch.full((5, 2), 9.0), "a histogram is empty: every sample fell outside the histogram range"),
    ],
)
def test_bad_samples_are_refused(generated, match):
    with pytest.raises(DataError, match=match):
        kl_pooled(generated, torch.zeros(5, 2))


def test_2d_kl_needs_two_coordinates():
    with pytest.raises(DataError, match="a 2-D histogram needs at least 2 coordinates, got 1 and 1"):
        kl_2d(torch.zeros(5, 1), torch.zeros(5, 1))


def test_ring_sampler_checks_its_size():
    with pytest.raises(ConfigError, match="number of ring samples must be positive, got 0"):
        sample_ring(0)


def test_ring_has_the_specified_radius_statistics():
    r = sample_ring(200_000, seed=0).norm(dim=1)
    # standard errors: 0.04 / √2e5 ≈ 1e-4 for the mean, ≈ 6e-5 for the std
    assert float(r.mean()) == pytest.approx(0.7, abs=5e-4)
    assert float(r.std()) == pytest.approx(0.04, abs=5e-4)

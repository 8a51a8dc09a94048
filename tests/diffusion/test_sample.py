import pytest
import torch

from kirchhoffnet.diffusion.field import Guided
from kirchhoffnet.diffusion.sample import euler_loop, euler_scheme
from kirchhoffnet.diffusion.samplers import sample
from kirchhoffnet.diffusion.score import ScoreModel, ScoreNet
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import ConfigError, DataError


def _random_model(num_classes: int = 0, parametrization: str = "score") -> ScoreModel:
    net = ScoreNet(num_classes=num_classes, parametrization=parametrization, noise_floor=0.05)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.5)
    return ScoreModel(net, VPSDE(0.1, 8.0))


@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize(
    ("num_classes", "guidance", "parametrization"), [(0, 0.0, "score"), (0, 0.0, "noise"), (3, 1.5, "score")]
)
def test_fused_loop_equals_the_plain_scheme(stochastic, num_classes, guidance, parametrization):
    model = _random_model(num_classes, parametrization)
    labels = torch.tensor([0, 1, 2, -1] * 25) if num_classes else None
    x = torch.randn(100, 2)
    fused = euler_loop(model, x, stochastic, 150, torch.Generator().manual_seed(3), labels, guidance)
    plain = euler_scheme(
        lambda y, s: Guided(model, guidance).score(y, s, labels),
        model.sde,
        x,
        stochastic,
        150,
        torch.Generator().manual_seed(3),
    )
    # same arithmetic in another order, float32 over 150 steps: agreement to ~1e-5 relative
    torch.testing.assert_close(fused, plain.detach(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stochastic", [False, True])
def test_schemes_recover_gaussian_data_from_its_exact_score(stochastic):
    """Data N(μ, v I) has marginals N(m μ, (m² v + σ²) I): the score is known in closed form."""
    sde = VPSDE(0.1, 20.0)
    mu, v = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.25

    def score(x, s):
        m, sigma = sde.marginal(s)
        return -(x - m[:, None] * mu) / (m[:, None] ** 2 * v + sigma[:, None] ** 2)

    g = torch.Generator().manual_seed(0)
    x = euler_scheme(score, sde, torch.randn(10_000, 2, generator=g, dtype=torch.float64), stochastic, 400, g)
    # standard errors with 1e4 samples: mean ≈ 0.005, variance ≈ 0.0035; the Euler bias O(β Δs) is ≲ 0.01
    torch.testing.assert_close(x.mean(dim=0), mu, rtol=0, atol=0.025)
    torch.testing.assert_close(x.var(dim=0), torch.full((2,), v, dtype=torch.float64), rtol=0, atol=0.025)


def _exact_unit_gaussian_net() -> ScoreModel:
    """Weights for which the network output is exactly −x, the score of N(0, I) data at every s."""
    net = ScoreNet(width=14, amplitude=5.0)
    with torch.no_grad():
        net.embedding.frequencies.zero_()  # sin units get 0, cos units get 1 from the embedding
        for layer in net.layers:
            layer.weight.zero_()
            layer.bias.zero_()
        first, middle, last = net.layers
        first.weight[:4] = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # relu(±x), relu(±y)
        first.bias[7:] = -1.0  # cancel the cos units' constant 1
        middle.weight[:4, :4] = torch.eye(4)
        middle.bias[7:] = -1.0
        last.weight[0, :2] = torch.tensor([-1.0, 1.0]) / 5.0
        last.weight[1, 2:4] = torch.tensor([-1.0, 1.0]) / 5.0
    return ScoreModel(net, VPSDE(0.1, 20.0))


def test_exact_network_keeps_unit_gaussian_samples():
    model = _exact_unit_gaussian_net()
    x = torch.randn(7, 2)
    torch.testing.assert_close(model.score(x, torch.full((7,), 0.3)), -x)
    ode = sample(model, 20_000, "pf-ode", steps=200, seed=1)
    start = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ode, start, rtol=0, atol=1e-4)  # drift ≡ 0 up to float32 rounding per step
    sde = sample(model, 20_000, "euler", steps=500, seed=1)
    # N(0, I) is invariant under the exact reverse SDE; standard error of a variance with 2e4 samples ≈ 0.01
    torch.testing.assert_close(sde.var(dim=0), torch.ones(2), rtol=0, atol=0.04)


def test_weights_override_the_network():
    model = _random_model()
    layers = [(w.detach() * 0, None if b is None else b.detach() * 0) for w, b in model.net.layer_weights()]
    zeroed = sample(model, 50, "pf-ode", steps=20, seed=0, weights=layers)
    assert not torch.allclose(zeroed, sample(model, 50, "pf-ode", steps=20, seed=0))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"solver": "rk4"}, ConfigError, "unknown solver 'rk4'; choose one of: analog, analog-ode, euler, pf-ode, "),
        ({"n": 0}, ConfigError, "the number of samples must be positive, got 0"),
        ({"steps": 0}, ConfigError, "the number of sampling steps must be positive, got 0"),
        ({"labels": torch.tensor([1])}, DataError, "this model is unconditional but labels were given"),
    ],
)
def test_bad_sampling_requests_are_refused(kwargs, error, match):
    args = {"n": 4, "solver": "euler", "steps": 3, **kwargs}
    with pytest.raises(error, match=match):
        sample(_random_model(), **args)


def test_conditional_labels_are_checked():
    model = _random_model(num_classes=3)
    with pytest.raises(DataError, match="this model is conditional on 3 classes: pass labels"):
        sample(model, 4, steps=2)
    with pytest.raises(DataError, match="got 3 labels for 4 samples; give one label or one per sample"):
        sample(model, 4, steps=2, labels=torch.tensor([0, 1, 2]))

import pytest
import torch

from kirchhoffnet.diffusion.field import Guided
from kirchhoffnet.diffusion.score import ClassEmbedding, ScoreModel, ScoreNet, TimeEmbedding, weight_noise_layers
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import ConfigError, DataError


def test_time_embedding_is_sin_and_cos_of_fixed_frequencies():
    embed = TimeEmbedding(14, scale=2.0, generator=torch.Generator().manual_seed(0))
    s = torch.tensor([0.0, 0.3, 1.0])
    e = embed(s)
    assert e.shape == (3, 14)
    torch.testing.assert_close(e[:, :7] ** 2 + e[:, 7:] ** 2, torch.ones(3, 7))
    torch.testing.assert_close(e[1, :7], torch.sin(2 * torch.pi * 0.3 * embed.frequencies))
    assert "frequencies" in dict(embed.named_buffers()) and not list(embed.parameters())  # fixed, not trained


def test_null_label_embeds_to_zero_and_labels_are_checked():
    embed = ClassEmbedding(3, 8)
    out = embed(torch.tensor([-1, 0, 2]))
    assert torch.all(out[0] == 0) and out[1].abs().sum() > 0
    with pytest.raises(DataError, match=r"labels must lie in \[-1, 3\) \(-1 = unconditional\), found 0..3"):
        embed(torch.tensor([0, 3]))
    with pytest.raises(DataError, match="labels must be a 1-D integer tensor"):
        embed(torch.tensor([0.5]))


def test_forward_adds_the_embedding_after_each_hidden_layer():
    net = ScoreNet(width=6, amplitude=5.0)
    x, s = torch.randn(4, 2), torch.full((4,), 0.2)
    first, middle, last = net.layers
    e = net.embedding(s)
    expected = last(torch.relu(middle(torch.relu(first(x) + e)) + e)) * 5.0
    torch.testing.assert_close(net(x, s), expected)


def test_noise_parametrization_divides_by_the_noise_level():
    net = ScoreNet(parametrization="noise", noise_floor=0.0)
    model = ScoreModel(net, VPSDE())
    x, s = torch.randn(5, 2), torch.full((5,), 0.4)
    sigma = model.sde.marginal(s)[1].unsqueeze(1)
    torch.testing.assert_close(model.score(x, s), -net(x, s) / sigma)


def test_guidance_mixes_conditional_and_free_scores():
    model = ScoreModel(ScoreNet(num_classes=3), VPSDE())
    x, s, labels = torch.randn(5, 2), torch.full((5,), 0.3), torch.tensor([0, 1, 2, 0, 1])
    conditional, free = model.score(x, s, labels), model.score(x, s, torch.full((5,), -1))
    torch.testing.assert_close(Guided(model, 2.0).score(x, s, labels), 3 * conditional - 2 * free)


def test_weight_noise_is_bounded_and_vanishes_at_zero_std():
    net = ScoreNet()
    x, s = torch.randn(5, 2), torch.full((5,), 0.3)
    torch.testing.assert_close(net(x, s, linear=weight_noise_layers(net, 0.0, 0.2)), net(x, s))
    plain = ScoreNet(bias=False)
    with torch.no_grad():
        noisy = weight_noise_layers(plain, 10.0, 0.2, torch.Generator().manual_seed(0))[0](torch.eye(2))
    ratio = noisy.t() / plain.layers[0].weight.detach()  # the probe's outputs are the noisy W1's columns
    assert float((ratio - 1).abs().max()) <= 0.2 + 1e-6  # clipped to ±limit whatever the std
    assert float((ratio - 1).abs().max()) > 0.19  # with std 10 almost every factor hits the clip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 7}, "the time embedding needs an even width"),
        ({"parametrization": "eps"}, "unknown score parametrization 'eps'; choose one of: noise, score"),
        ({"dim": 0}, "ScoreNet needs dim >= 1"),
    ],
)
def test_bad_networks_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ScoreNet(**kwargs)


def test_labels_must_match_the_model():
    x, s = torch.randn(2, 2), torch.full((2,), 0.3)
    with pytest.raises(DataError, match="this model is unconditional but labels were given"):
        ScoreNet()(x, s, torch.tensor([0, 1]))
    with pytest.raises(DataError, match="this model is conditional on 3 classes: pass labels"):
        ScoreNet(num_classes=3)(x, s)


def test_spec_round_trip():
    model = ScoreModel(ScoreNet(width=8, num_classes=2, parametrization="noise", noise_floor=0.05), VPSDE(0.01, 8.0))
    again = ScoreModel.from_spec(model.spec())
    again.load_state_dict(model.state_dict())
    x, s, labels = torch.randn(3, 2), torch.full((3,), 0.5), torch.tensor([0, 1, -1])
    torch.testing.assert_close(again.score(x, s, labels), model.score(x, s, labels))

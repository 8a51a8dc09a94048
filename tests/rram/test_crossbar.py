import pytest
import torch
from pydantic import ValidationError

from kirchhoffnet.errors import ConfigError
from kirchhoffnet.rram.chip import Chip
from kirchhoffnet.rram.crossbar import Crossbar
from kirchhoffnet.rram.device import RRAMDevice


def _layer(out: int = 5, inp: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(out, inp, generator=g, dtype=torch.float64), torch.randn(out, generator=g, dtype=torch.float64)


def _program(device: RRAMDevice, seed: int = 0, **kwargs) -> Crossbar:
    w, b = _layer(**kwargs)
    return Crossbar(w, b, device, torch.Generator().manual_seed(seed))


def test_ideal_crossbar_reproduces_the_layer():
    w, b = _layer()
    crossbar = Crossbar(w, b, RRAMDevice(), torch.Generator())
    w_eff, b_eff = crossbar.effective()
    # conductances are sums and differences of O(1e-4) S: rounding ~1e-20 S ≈ 1e-16 in weight units
    torch.testing.assert_close(w_eff, w, rtol=0, atol=1e-13)
    torch.testing.assert_close(b_eff, b, rtol=0, atol=1e-13)
    x = torch.randn(7, 4, dtype=torch.float64)
    torch.testing.assert_close(x @ w_eff.t() + b_eff, x @ w.t() + b, rtol=0, atol=1e-12)


def test_ideal_pairs_use_one_device_per_sign_and_full_range():
    device = RRAMDevice(g_min_s=2e-6, g_max_s=5e-5)
    crossbar = _program(device)
    low = torch.minimum(crossbar.g_pos_s, crossbar.g_neg_s)
    assert torch.all(low == device.g_min_s)  # the partner of each programmed cell stays at G_min
    assert float(torch.maximum(crossbar.g_pos_s, crossbar.g_neg_s).max()) == pytest.approx(device.g_max_s, rel=1e-12)


@pytest.mark.parametrize(
    "device",
    [
        RRAMDevice(prog_noise=0.5),
        RRAMDevice(prog_noise=0.5, prog_noise_kind="lognormal"),
        RRAMDevice(stuck_on_fraction=0.2, stuck_off_fraction=0.2),
        RRAMDevice(drift_nu=0.1, drift_nu_std=0.05, drift_time_s=1e4),
        RRAMDevice(levels=4, prog_noise=0.3),
    ],
)
def test_conductances_stay_in_the_physical_range(device):
    crossbar = _program(device, out=30, inp=30)
    for g in (crossbar.g_pos_s, crossbar.g_neg_s):
        assert float(g.min()) >= device.g_min_s
        assert float(g.max()) <= device.g_max_s


@pytest.mark.parametrize("levels", [2, 3, 16, 64])
def test_programming_lands_on_the_levels(levels):
    device = RRAMDevice(levels=levels)
    crossbar = _program(device, out=20, inp=20)
    step = (device.g_max_s - device.g_min_s) / (levels - 1)
    for g, target in ((crossbar.g_pos_s, crossbar.target_pos_s), (crossbar.g_neg_s, crossbar.target_neg_s)):
        index = (g - device.g_min_s) / step
        torch.testing.assert_close(index, index.round(), rtol=0, atol=1e-9)  # on the grid, up to rounding
        assert float((g - target).abs().max()) <= step / 2 * (1 + 1e-9)  # nearest level


def test_a_seed_is_a_chip():
    device = RRAMDevice(prog_noise=0.1, stuck_off_fraction=0.05)
    layers = [_layer(seed=1), _layer(out=3, inp=5, seed=2)]
    first, again, other = Chip(layers, device, seed=7), Chip(layers, device, seed=7), Chip(layers, device, seed=8)
    for a, b, c in zip(first.effective(), again.effective(), other.effective(), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[0], c[0])
    assert first.num_cells == 2 * (5 * 5 + 3 * 6)


@pytest.mark.parametrize("kind", ["gaussian", "lognormal"])
def test_programming_noise_has_the_requested_spread(kind):
    device = RRAMDevice(prog_noise=0.1, prog_noise_kind=kind, g_min_s=1e-9, g_max_s=1e-3)
    w = torch.full((300, 300), 0.5, dtype=torch.float64)
    w[0, 0] = 1.0  # maps to G_max, so the others sit mid-range, far from clipping
    crossbar = Crossbar(w, None, device, torch.Generator().manual_seed(0))
    ratio = crossbar.g_pos_s[:, :-1] / crossbar.target_pos_s[:, :-1]
    # 9e4 cells: standard errors ≈ 0.1 / 300 ≈ 3e-4 on the mean and ≈ 2.4e-4 on the std
    assert float(ratio.mean()) == pytest.approx(1.0, abs=2e-3)
    expected_std = 0.1 if kind == "gaussian" else float(torch.expm1(torch.tensor(0.01)).sqrt())
    assert float(ratio.std()) == pytest.approx(expected_std, rel=2e-2)


def test_stuck_cells_have_the_requested_fractions():
    device = RRAMDevice(stuck_off_fraction=0.1, stuck_on_fraction=0.05, g_min_s=1e-6, g_max_s=1e-4)
    w = torch.full((200, 200), 0.5, dtype=torch.float64)
    w[0, 0] = 1.0  # maps to G_max, so the others are programmed mid-range
    g = Crossbar(w, None, device, torch.Generator().manual_seed(0)).g_pos_s[:, :-1]
    # 4e4 cells: binomial standard errors ≈ 1.5e-3 and 1.1e-3
    assert float((g == device.g_min_s).double().mean()) == pytest.approx(0.1, abs=6e-3)
    assert float((g == device.g_max_s).double().mean()) == pytest.approx(0.05, abs=5e-3)


def test_drift_follows_the_power_law():
    device = RRAMDevice(drift_nu=0.05, drift_time_s=100.0, drift_t0_s=1.0)
    crossbar = _program(device)
    expected = crossbar.target_pos_s * 100.0**-0.05
    torch.testing.assert_close(crossbar.g_pos_s, expected.clamp(min=device.g_min_s), rtol=1e-12, atol=0)


def test_read_noise_std_matches_independent_cell_fluctuations():
    device = RRAMDevice(read_noise=0.05)
    crossbar = _program(device, out=3, inp=4)
    x = torch.tensor([[0.3, -1.0, 0.5, 2.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    reads = 200_000
    pos = crossbar.g_pos_s * (1 + 0.05 * torch.randn(reads, *crossbar.g_pos_s.shape, generator=g, dtype=torch.float64))
    neg = crossbar.g_neg_s * (1 + 0.05 * torch.randn(reads, *crossbar.g_neg_s.shape, generator=g, dtype=torch.float64))
    x1 = torch.cat([x, torch.ones(1, 1, dtype=torch.float64)], dim=1)
    outputs = ((pos - neg) @ x1.t()).squeeze(2) / crossbar.siemens_per_unit
    # 2e5 reads: the sample std has relative standard error 1/√(2 × 2e5) ≈ 1.6e-3
    torch.testing.assert_close(outputs.std(dim=0), crossbar.read_std(x)[0], rtol=1e-2, atol=0)


def test_power_is_sum_of_g_v_squared():
    crossbar = _program(RRAMDevice(prog_noise=0.1))
    v = torch.randn(3, 5, dtype=torch.float64) * 0.1
    explicit = torch.stack(
        [
            sum((crossbar.g_pos_s[:, j] + crossbar.g_neg_s[:, j]).sum() * v[b, j] ** 2 for j in range(5))
            for b in range(3)
        ]
    )
    torch.testing.assert_close(crossbar.power_w(v), explicit, rtol=1e-12, atol=0)


def test_bad_layers_and_devices_are_refused():
    with pytest.raises(
        ConfigError, match=r"a crossbar needs a \(out, in\) weight and an \(out,\) bias, got \(3,\) and None"
    ):
        Crossbar(torch.zeros(3), None, RRAMDevice(), torch.Generator())
    with pytest.raises(ConfigError, match="cannot program NaN or infinite weights into a crossbar"):
        Crossbar(torch.full((2, 2), float("nan")), None, RRAMDevice(), torch.Generator())
    with pytest.raises(ValidationError, match=r"g_max_s \(1e-06\) must exceed g_min_s \(1e-05\)"):
        RRAMDevice(g_min_s=1e-5, g_max_s=1e-6)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RRAMDevice(prog_sigma=0.1)
    with pytest.raises(ValidationError, match="stuck_off_fraction \\+ stuck_on_fraction must not exceed 1"):
        RRAMDevice(stuck_off_fraction=0.6, stuck_on_fraction=0.6)


def _relative_errors(crossbar: Crossbar, unclipped: bool = False) -> torch.Tensor:
    """Relative write errors of all cells, or only of those no write error can push out of [G_min, G_max]."""
    g = torch.cat([crossbar.g_pos_s.flatten(), crossbar.g_neg_s.flatten()])
    target = torch.cat([crossbar.target_pos_s.flatten(), crossbar.target_neg_s.flatten()])
    if unclipped:
        d = crossbar.device
        inside = (target > 1.2 * d.g_min_s) & (target < 0.8 * d.g_max_s)
        g, target = g[inside], target[inside]
    return g / target - 1


@pytest.mark.parametrize("tolerance", [0.02, 0.1])
def test_write_verify_keeps_every_cell_within_the_tolerance(tolerance):
    device = RRAMDevice(prog_noise=0.1, verify_tolerance=tolerance, verify_max_writes=60)
    errors = _relative_errors(_program(device, out=30, inp=30))
    # a cell misses 0.02 with probability 0.84 per write: 0.84^60 ≈ 3e-5, ~0.05 misses expected in 1,860 cells
    assert float(errors.abs().max()) <= tolerance * (1 + 1e-12)


def test_write_verify_std_is_the_truncated_gaussians():
    sigma, tolerance = 0.1, 0.1
    crossbar = _program(RRAMDevice(prog_noise=sigma, verify_tolerance=tolerance), out=200, inp=200)
    errors = _relative_errors(crossbar, unclipped=True)
    a = torch.tensor(tolerance / sigma, dtype=torch.float64)
    normal = torch.distributions.Normal(0.0, 1.0)
    density = torch.exp(-0.5 * a * a) / (2 * torch.pi) ** 0.5
    expected = sigma * torch.sqrt(1 - 2 * a * density / (2 * normal.cdf(a) - 1))
    # ~30,000 unclipped cells: the sample std is within ~0.5 % (1σ) of the truth; 3 % allows 6σ
    assert float(errors.std()) == pytest.approx(float(expected), rel=0.03)


def test_a_single_write_is_open_loop_programming():
    open_loop = _program(RRAMDevice(prog_noise=0.1))
    single = _program(RRAMDevice(prog_noise=0.1, verify_tolerance=0.01, verify_max_writes=1))
    torch.testing.assert_close(single.g_pos_s, open_loop.g_pos_s, rtol=0, atol=0)


def test_read_noise_blurs_the_verification():
    kwargs = {"prog_noise": 0.1, "verify_tolerance": 0.02}
    exact = _relative_errors(_program(RRAMDevice(**kwargs), out=100, inp=100)).std()
    blurred = _relative_errors(_program(RRAMDevice(read_noise=0.05, **kwargs), out=100, inp=100)).std()
    # cells accepted on a noisy read keep errors beyond the tolerance, but far fewer than one open-loop write
    assert 1.5 * float(exact) < float(blurred) < 0.1


@pytest.mark.parametrize(
    ("device", "random"),
    [
        (
            RRAMDevice(levels=16, drift_nu=0.05, read_noise=0.1),
            False,
        ),  # drift without spread, read noise: not programming
        (RRAMDevice(prog_noise=0.01), True),
        (RRAMDevice(stuck_off_fraction=0.1), True),
        (RRAMDevice(drift_nu_std=0.01, drift_time_s=1e4), True),
    ],
)
def test_programs_randomly_tells_whether_chip_seeds_differ(device, random):
    first, second = _program(device, seed=1), _program(device, seed=2)
    assert device.programs_randomly is random
    assert torch.equal(first.g_pos_s, second.g_pos_s) is not random

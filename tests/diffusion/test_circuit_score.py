import math

import pytest
import torch

from kirchhoffnet.data.points import sample_ring
from kirchhoffnet.diffusion import VPSDE, dsm_loss
from kirchhoffnet.diffusion.field import Guided
from kirchhoffnet.diffusion.sample import euler_scheme
from kirchhoffnet.diffusion.samplers import sample
from kirchhoffnet.diffusion.score_circuit.circuit import ScoreCircuit
from kirchhoffnet.diffusion.score_circuit.likelihood import circuit_log_likelihood
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
from kirchhoffnet.diffusion.score_circuit.sample import circuit_pf_ode
from kirchhoffnet.diffusion.score_circuit.topology import score_topology
from kirchhoffnet.errors import ConfigError, DataError

from .helpers import fit


def tiny(
    device="ShiftTanh2",
    dtype=torch.float64,
    hidden=5,
    settle_steps=3,
    init_scale=0.7,
    contraction=0.5,
    passive=False,
    num_classes=0,
):
    circuit = ScoreCircuit(
        2,
        hidden,
        4,
        1,
        device=device,
        settle_steps=settle_steps,
        init_scale=init_scale,
        contraction=contraction,
        passive=passive,
        num_classes=num_classes,
        generator=torch.Generator().manual_seed(0),
    )
    return CircuitScoreModel(circuit, VPSDE(0.01, 8.0)).to(dtype)


def test_topology_counts_and_node_numbering():
    edges = score_topology(dim=2, hidden=3, driven=4, repeat=2)
    assert edges.shape == (2, 3 * (2 * 2 + 4) + 2 * (1 + 4))
    hidden = set(range(3, 6))
    # every data–hidden and time–hidden device ends on a hidden node; the rest start on a data node
    into_hidden = [int(d) in hidden for d in edges[1]]
    assert sum(into_hidden) == 3 * (2 * 2 + 4)
    assert all(int(s) in (1, 2) for s, h in zip(edges[0], into_hidden, strict=True) if not h)


def test_time_nodes_are_driven_sources_not_integrated():
    model = tiny(contraction=None)  # raw parameters are the programmed ones, so the slice's own field applies
    circuit = model.circuit
    x = torch.randn(6, 2, dtype=torch.float64)
    s = torch.tensor(0.3, dtype=torch.float64)
    drive = circuit.drive(s)
    h = circuit.settle(x.t(), drive)
    state = torch.cat([x.t(), h, drive.expand(-1, 6)])
    field = circuit.edges.field(state)
    # KCL current flows into the time nodes, so an integrated node there would move; the source holds e(s)
    assert field[-4:].abs().max() > 1e-3
    torch.testing.assert_close(drive.squeeze(1), circuit.embedding(s.reshape(1)).squeeze(0))
    # the data-node velocity is the data rows of that same KCL field, and time enters only through the sources
    torch.testing.assert_close(circuit.velocity(x, s), field[:2].t())
    assert (circuit.velocity(x, s) - circuit.velocity(x, torch.tensor(0.8, dtype=torch.float64))).abs().max() > 1e-3


def test_contraction_bounds_the_hidden_loop_gain():
    circuit = tiny(init_scale=5.0).circuit  # large raw gains, still bounded when programmed
    gain = circuit.programmed()[1, : circuit.hidden * (2 + 4)]
    data_to_hidden = circuit.hidden * 2  # dim 2, repeat 1
    assert gain[:data_to_hidden].abs().max() <= 0.5 * circuit.leak / 2  # ρ g / (dim · repeat)
    assert (gain[data_to_hidden:] == 0).all()  # time sources inject a current set by their voltage alone
    x = torch.randn(10, 2, dtype=torch.float64)
    first = circuit.settle(x.t(), circuit.drive(torch.tensor(0.3, dtype=torch.float64)))
    assert circuit.residual(x, torch.tensor(0.3, dtype=torch.float64)).max() < 0.5**3 * 10  # error ≤ ρⁿ, n = 3
    assert torch.isfinite(first).all()


def passive(device="ShiftTanh2", dtype=torch.float64, init_scale=3.0, **kwargs):
    """A passive circuit with large gains: plain relaxation from 0 would diverge on it."""
    return tiny(device, dtype, init_scale=init_scale, contraction=None, passive=True, settle_steps=60, **kwargs)


@pytest.mark.parametrize("device", ["ShiftTanh2", "ShiftLeakyRelu2"])
def test_passive_terminals_load_the_hidden_nodes_and_newton_finds_the_equilibrium(device):
    circuit = passive(device).circuit
    cut = circuit.hidden * (2 + 4)
    gain = circuit.programmed()[1]
    assert (gain[:cut] < 0).all()  # every device into a hidden node loads it
    torch.testing.assert_close(gain[cut:], circuit.edges.params[1, cut:])  # the other devices are as trained
    x, s = 2 * torch.randn(50, 2, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)
    drive = circuit.drive(s)
    h = circuit.settle(x.t(), drive)
    balance, slope = circuit.hidden_balance(x.t(), h, drive)
    assert balance.abs().max() < 1e-12 and (slope <= -circuit.leak).all()
    assert circuit.residual(x, s).max() < 1e-10  # the kernel's KCL currents agree with the dense balance
    # the loop gain is far beyond what relaxation h ← I_h / g could settle
    assert (circuit.programmed()[1, :cut].abs().view(-1, circuit.hidden).sum(0) > circuit.leak).any()
    # a warm start from a nearby equilibrium lands on the same root
    torch.testing.assert_close(circuit.settle(x.t(), drive, h + 0.3), h, rtol=0, atol=1e-10)


def test_hidden_balance_slope_is_the_derivative_of_the_balance():
    for model in (passive(), tiny(), tiny(device="ShiftTanh1", contraction=None)):
        circuit = model.circuit
        x, drive = torch.randn(2, 7, dtype=torch.float64), circuit.drive(torch.tensor(0.6, dtype=torch.float64))
        h = torch.randn(circuit.hidden, 7, dtype=torch.float64)
        balance, slope = circuit.hidden_balance(x, h, drive)
        torch.testing.assert_close(balance, circuit.currents(x, h, drive)[1] - circuit.leak * h)
        up, down = circuit.hidden_balance(x, h + 1e-6, drive)[0], circuit.hidden_balance(x, h - 1e-6, drive)[0]
        numeric = (up - down) / 2e-6
        torch.testing.assert_close(slope, numeric, rtol=1e-6, atol=1e-8)  # diagonal: hidden nodes are independent


def test_passive_gradient_is_the_implicit_function_gradient():
    model = passive(init_scale=1.5)
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.05, 0.4, 0.9], dtype=torch.float64)
    params = model.circuit.edges.params
    # finite differences re-solve the equilibrium; autograd differentiates one Newton step from the root
    assert torch.autograd.gradcheck(lambda x, p: model.velocity(x, s), (x, params))


def test_passive_full_transient_is_stable_and_approaches_the_quasi_static_one():
    model = passive(init_scale=4.0)  # loads up to 16 g per hidden node: an explicit hidden step would blow up
    x = torch.randn(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    quasi = circuit_pf_ode(model, x, steps=100)
    gaps = [float((circuit_pf_ode(model, x, 100, hidden_capacitance=c) - quasi).abs().max()) for c in (0.04, 0.01)]
    assert gaps[1] < gaps[0] / 2.5 and gaps[1] < 0.05  # O(C_h), as for the bounded circuit


def test_ground_invariance_of_difference_devices():
    """Moving every node (ground and the time sources included) by the same voltage changes no current."""
    circuit = tiny(device="ShiftTanh1", contraction=None).circuit
    x = torch.randn(4, 2, dtype=torch.float64)
    drive = circuit.drive(torch.tensor(0.5, dtype=torch.float64)).expand(-1, 4)
    h = circuit.settle(x.t(), drive)
    nodes = torch.cat([torch.zeros(1, 4, dtype=torch.float64), x.t(), h, drive])  # (N, B), ground first
    src, dst = circuit.edges.edge_index
    family, params = circuit.edges.device_family, circuit.edges.params[:, :, None]
    for shift in (0.0, 0.37, -1.2):
        moved = nodes + shift
        current = family.current(moved[src], moved[dst], params)
        torch.testing.assert_close(current.t(), circuit.edges.currents(nodes[1:].t()), rtol=0, atol=1e-12)


def test_velocity_gradient_matches_finite_differences():
    model = tiny()
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.05, 0.4, 0.9], dtype=torch.float64)
    params = model.circuit.edges.params
    # gradcheck compares autograd with central finite differences (eps 1e-6, atol 1e-5 in float64)
    assert torch.autograd.gradcheck(lambda x, p: model.velocity(x, s), (x, params))  # through the gain bound too
    assert torch.autograd.gradcheck(lambda x: model.score(x, s), (x,))


def test_score_is_the_velocity_read_through_the_pf_ode():
    model = tiny()
    x, s = torch.randn(5, 2, dtype=torch.float64), torch.full((5,), 0.2, dtype=torch.float64)
    beta = model.sde.beta(s).unsqueeze(1)
    torch.testing.assert_close(0.5 * beta * (x + model.score(x, s)), model.velocity(x, s))


def test_pf_ode_as_circuit_dynamics_equals_the_generic_sampler():
    model = tiny()
    x = torch.randn(20, 2, dtype=torch.float64)
    circuit_run = circuit_pf_ode(model, x, steps=40)
    generic = euler_scheme(model.score, model.sde, x, False, 40)
    torch.testing.assert_close(circuit_run, generic, rtol=0, atol=1e-10)  # same equation, float64 rounding


def test_sharpening_is_a_smaller_data_capacitor():
    model = tiny()
    x = torch.randn(8, 2, dtype=torch.float64)
    sharp = circuit_pf_ode(model.sharpened(2.0), x, steps=30)
    generic = euler_scheme(model.score, model.sde.scaled(2.0), x, False, 30)
    torch.testing.assert_close(sharp, generic, rtol=0, atol=1e-10)


def test_fast_hidden_nodes_approach_the_quasi_static_transient():
    model = tiny(settle_steps=15)  # contraction 0.5: 15 relaxation steps reach the equilibrium to 0.5¹⁵ ≈ 3e-5
    x = torch.randn(10, 2, dtype=torch.float64)
    residual = model.circuit.residual(x, torch.tensor(0.5, dtype=torch.float64))
    assert residual.max() < 1e-4
    quasi = circuit_pf_ode(model, x, steps=100)
    gaps = [float((circuit_pf_ode(model, x, 100, hidden_capacitance=c) - quasi).abs().max()) for c in (0.04, 0.01)]
    # singular perturbation: the departure is O(C_h), so a 4× smaller C_h gives ~4× less (≥ 2.5× asked)
    assert gaps[1] < gaps[0] / 2.5
    assert gaps[0] < 0.2


@pytest.mark.parametrize("kind", ["contraction", "passive"])
def test_tiny_training_lowers_the_dsm_loss(kind):
    if kind == "passive":
        model = passive(dtype=torch.float32, hidden=8, init_scale=1.0)
    else:
        model = tiny(dtype=torch.float32, hidden=8, settle_steps=2, init_scale=1.0)
    x0 = sample_ring(512, seed=1)

    def loss() -> float:
        with torch.no_grad():
            return float(dsm_loss(model, x0, None, torch.Generator().manual_seed(5)))

    before = loss()

    def batches(b, generator):
        return sample_ring(b, seed=int(torch.randint(0, 2**31, (1,), generator=generator))), None

    fit(model, batches, steps=150)
    assert loss() < 0.8 * before


def test_reverse_sde_sampler_runs_and_is_reproducible():
    model = tiny(dtype=torch.float32)
    a = sample(model, 50, "euler", steps=20, seed=4)
    b = sample(model, 50, "euler", steps=20, seed=4)
    assert a.shape == (50, 2) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("guidance", [0.0, 0.7])
def test_reverse_sde_warm_starts_newton_at_the_same_equilibria(guidance):
    model = conditional(dtype=torch.float32, init_scale=3.0)  # large gains: Newton needs several iterations
    labels = torch.arange(40) % 3
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(40, 2, generator=generator)  # what sample draws first with seed 3

    def cold(z, s):
        return Guided(model, guidance).score(z, s, labels)  # every call settles from h = 0

    expected = euler_scheme(cold, model.sde, x, True, 30, generator)
    warm = sample(model, 40, "euler", steps=30, seed=3, labels=labels, guidance=guidance)
    torch.testing.assert_close(warm, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden": 0}, "needs dim, hidden, repeat and settle_steps >= 1"),
        ({"leak": 0.0}, "leak conductance must be positive"),
        ({"time_nodes": 3}, "even width"),
        ({"contraction": 1.0}, r"contraction must lie in \(0, 1\)"),
        ({"device": "ShiftTanh1"}, "contraction needs a device family with a gain_dst"),
        ({"passive": True}, "passive hidden terminals replace the contraction bound"),
        ({"passive": True, "contraction": None, "device": "ShiftRelu1"}, "passive needs a device family with a gain"),
    ],
)
def test_bad_circuit_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ScoreCircuit(**kwargs)


def test_sampler_and_model_errors():
    model = tiny(dtype=torch.float32)
    with pytest.raises(
        ConfigError,
        match=r"circuit score model cannot sample with 'analog' \(reverse-sde/analog\); "
        r"it supports: pf-ode \(pf-ode/transient\), euler \(reverse-sde/euler\), pf-ode/euler$",
    ):
        sample(model, 10, "analog")
    with pytest.raises(ConfigError, match="unknown solver 'rk4'; choose one of: analog, analog-ode, euler, pf-ode, "):
        sample(model, 10, "rk4")
    with pytest.raises(ConfigError, match="number of samples must be positive"):
        sample(model, 0)
    with pytest.raises(ConfigError, match="hidden_capacitance must be >= 0"):
        circuit_pf_ode(model, torch.zeros(2, 2), 3, hidden_capacitance=-1.0)
    with pytest.raises(ConfigError, match="score_gain 1"):
        model.sharpened(1.0, 1.25)
    with pytest.raises(DataError, match="unconditional but labels were given"):
        model.score(torch.zeros(2, 2), torch.tensor(0.5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"noise_aware acts on the crossbar network; the circuit score model has"):
        dsm_loss(model, torch.zeros(4, 2), None, torch.Generator(), noise_std=0.1)


@pytest.mark.parametrize("kind", ["contraction", "passive"])
def test_log_likelihood_is_a_normalised_density(kind):
    model = tiny() if kind == "contraction" else passive(init_scale=1.0)
    axis = torch.linspace(-6, 6, 61, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    log_density = circuit_log_likelihood(model.sharpened(1.5), grid, steps=50)  # sharpening is ignored
    # the change of variables through the probability-flow ODE: a density that integrates to 1 over the plane
    assert float(log_density.exp().sum() * (axis[1] - axis[0]) ** 2) == pytest.approx(1.0, abs=2e-3)
    prior = -0.5 * grid.square().sum(1) - math.log(2 * math.pi)
    assert float((log_density - prior).abs().max()) > 0.1  # not the prior: the circuit moves the mass


def conditional(classes=3, **kwargs):
    """A passive circuit with one class source per class."""
    return passive(num_classes=classes, init_scale=kwargs.pop("init_scale", 1.0), **kwargs)


def test_class_sources_hold_the_one_hot_label_and_are_wired_like_the_time_nodes():
    circuit = conditional().circuit
    s, labels = torch.tensor(0.4, dtype=torch.float64), torch.tensor([2, -1, 0])
    drive = circuit.drive(s, labels)
    torch.testing.assert_close(drive[:4], circuit.embedding(s).t().expand(-1, 3))
    expected = torch.tensor([[0.0, 0, 1], [0, 0, 0], [1, 0, 0]], dtype=torch.float64)  # −1: every source at 0 V
    torch.testing.assert_close(drive[4:], expected)
    src, dst = circuit.edges.edge_index
    hidden = set(range(3, 3 + circuit.hidden))
    for node in range(3 + circuit.hidden + 4, circuit.num_nodes):  # the three class nodes
        assert sorted(int(d) for d in dst[src == node]) == sorted(hidden)
        assert sorted(int(a) for a in src[dst == node]) == [1, 2]  # and every data node reads it
    x = torch.randn(6, 2, dtype=torch.float64)
    with torch.no_grad():
        velocities = [circuit.velocity(x, s, torch.full((6,), c)) for c in (-1, 0, 1, 2)]
    for i in range(4):
        for j in range(i):
            assert float((velocities[i] - velocities[j]).abs().max()) > 1e-3  # the label steers the field


def test_guidance_mixes_the_currents_of_two_circuit_copies():
    model = conditional()
    x, s = torch.randn(6, 2, dtype=torch.float64), torch.full((6,), 0.3, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    guided = Guided(model, 1.5).velocity(x, s, labels)
    free = model.velocity(x, s, torch.full_like(labels, -1))
    torch.testing.assert_close(guided, 2.5 * model.velocity(x, s, labels) - 1.5 * free)
    beta = model.sde.beta(s).unsqueeze(1)
    torch.testing.assert_close(Guided(model, 1.5).score(x, s, labels), 2 * guided / beta - x)


def test_guided_circuit_transient_is_the_guided_probability_flow():
    model = conditional()
    x, labels = torch.randn(12, 2, dtype=torch.float64), torch.arange(12) % 3
    sharp = model.sharpened(1.3)
    quasi = circuit_pf_ode(sharp, x, 40, labels=labels, guidance=0.7)

    def score(z, s):
        return Guided(model, 0.7).score(z, s, labels)

    generic = euler_scheme(score, model.sde.scaled(1.3), x, False, 40)
    torch.testing.assert_close(quasi, generic, rtol=0, atol=1e-9)  # warm-started Newton: the same equilibria
    full = circuit_pf_ode(sharp, x, 40, hidden_capacitance=1e-3, labels=labels, guidance=0.7)
    assert 0 < float((full - quasi).abs().max()) < 0.05  # each copy's hidden nodes integrated, O(C_h) apart


def test_conditional_training_puts_each_class_where_its_data_is():
    model = conditional(classes=2, dtype=torch.float32, hidden=8)

    def batches(b, generator):
        labels = torch.randint(0, 2, (b,), generator=generator)
        centre = torch.stack([1.0 - 2.0 * labels, torch.zeros(b)], dim=1)
        return centre + 0.1 * torch.randn(b, 2, generator=generator), labels

    fit(model, batches, steps=300, label_dropout=0.1)
    for label, side in ((0, 1.0), (1, -1.0)):
        x = sample(model, 300, "pf-ode", steps=60, labels=torch.tensor(label))
        assert side * float(x[:, 0].mean()) > 0.6 and float(x[:, 1].abs().mean()) < 0.4


def test_conditional_label_errors():
    model = conditional(dtype=torch.float32)
    with pytest.raises(DataError, match="conditional on 3 classes: pass labels"):
        sample(model, 4)
    with pytest.raises(DataError, match=r"labels must lie in \[-1, 3\)"):
        sample(model, 4, labels=torch.tensor(3))
    with pytest.raises(DataError, match="got 3 labels for 4 samples"):
        sample(model, 4, labels=torch.tensor([0, 1, 2]))
    with pytest.raises(DataError, match="1-D integer tensor"):
        model.velocity(torch.zeros(2, 2), torch.tensor(0.5), torch.zeros(2))

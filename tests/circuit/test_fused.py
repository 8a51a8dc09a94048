"""The numba edge kernel (``kernel="fused"``) against the torch gather path, and when ``auto`` takes it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import kirchhoffnet as kn
import kirchhoffnet.circuit._fused as fused
from kirchhoffnet import runtime
from kirchhoffnet.data import read_idx
from kirchhoffnet.devices import available
from kirchhoffnet.devices.tanh import ShiftTanh2
from tests.conftest import MNIST_SUBSET

CPU = torch.device("cpu")


def _piece(family: str, dtype: torch.dtype, nodes: int = 30, edges: int = 400) -> kn.Slice:
    """A random circuit with ground on both ends of some edges and three nodes that no edge touches."""
    grounded = torch.tensor([[0, 1, 0, 2], [3, 0, 5, 0]])
    topology = torch.cat([kn.topology.random_graph(nodes, edges, seed=3), grounded], dim=1)
    piece = kn.Slice(topology, family, num_nodes=nodes + 3, capacitance=torch.rand(nodes + 2) + 0.5).to(dtype)
    with torch.no_grad():
        piece.params.normal_(0.0, 0.8)
    return piece


FUSED = [f for f in available() if fused.activation_code(kn.devices.resolve(f)) is not None]


@pytest.mark.parametrize("family", FUSED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 7, 300])  # one column, less than a tile, several tiles with a ragged last
def test_the_fused_kernel_equals_the_gather_path(family, dtype, batch):
    piece = _piece(family, dtype)
    state = torch.randn(piece.num_state, batch, dtype=dtype)
    with torch.no_grad():
        reference = piece.field_and_divergence(state, "gather")
        field, trace = piece.field_and_divergence(state, "fused")
        assert torch.equal(piece.field(state, "fused"), field)
    tol = {torch.float32: 2e-5, torch.float64: 1e-12}[dtype]
    torch.testing.assert_close(field, reference[0], rtol=tol, atol=tol)
    torch.testing.assert_close(trace, reference[1], rtol=tol, atol=tol)
    assert torch.equal(field[-3:], torch.zeros_like(field[-3:]))  # nodes without edges stay put


def test_a_family_without_a_kernel_is_refused_by_name_and_auto_keeps_it_on_torch():
    """TransistorTable's σ is a table the numba kernel does not evaluate: asked for, it says so; ``auto`` gathers."""
    piece = _piece("TransistorTable", torch.float64)
    state = torch.randn(piece.num_state, 3, dtype=torch.float64)
    with pytest.raises(kn.errors.ConfigError, match="kernel 'fused' does not implement device family TransistorTable"):
        piece.field(state, "fused")
    with torch.no_grad():
        torch.testing.assert_close(piece.field(state, "auto"), piece.field(state, "gather"), rtol=1e-12, atol=1e-12)


def test_the_fused_kernel_follows_in_place_parameter_updates():
    piece = _piece("ShiftRelu1", torch.float64)
    state = torch.randn(piece.num_state, 5, dtype=torch.float64)
    with torch.no_grad():
        before = piece.field(state, "fused")
        piece.params.mul_(1.5)
        torch.testing.assert_close(piece.field(state, "fused"), piece.field(state, "gather"), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(before, piece.field(state, "gather").detach())


def _mnist_like() -> kn.Circuit:
    """The original MNIST checkpoint's circuit in small: mixed local/fully connected, ShiftRelu1, two slices."""
    circuit = kn.Circuit(kn.topology.mix_connect(1, 8, 8, 3, 10, (1, 1)), "ShiftRelu1", slices=2, init="gauss")
    with torch.no_grad():
        for piece in circuit.slices:
            piece.params.normal_(0.0, 0.3)
    return circuit


@pytest.mark.parametrize("family", FUSED)
@pytest.mark.parametrize("batch", [1, 300])  # one column; several tiles with a ragged last
def test_the_fused_backward_pass_equals_autograd_through_the_gather_path(family, batch):
    """The numba vector-Jacobian product (σ and σ' recomputed per tile) against autograd, for the
    state, every parameter row and a non-unit ``post``; ``auto`` takes it from ``MIN_EDGES`` on where σ is cheap."""
    piece = _piece(family, torch.float64, edges=fused.MIN_EDGES)
    state = torch.randn(piece.num_state, batch, dtype=torch.float64)
    cotangent = torch.randn(piece.num_state, batch, dtype=torch.float64)
    kernel = piece.kernel(torch.float64, CPU)
    assert (kernel.fused_for(piece.device_family, "auto") is not None) == fused.preferred(piece.device_family)
    assert kernel.fused_for(piece.device_family, "affine") is None  # the torch products only

    def grads(path):
        piece.zero_grad()
        x = state.clone().requires_grad_(True)
        (piece.field(x, path) * cotangent).sum().backward()
        return x.grad, piece.params.grad.clone()

    for got, want in zip(grads("fused"), grads("gather"), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)


def test_inference_on_an_original_like_circuit_takes_the_fused_path_and_gives_the_torch_answer():
    circuit = _mnist_like().double()
    assert circuit.slice(0).num_edges >= 1000  # large enough for auto
    x = torch.rand(9, 64, dtype=torch.float64)
    fixed = {"method": "rk4", "step_size": 0.25}  # the same steps on both paths: only rounding differs
    with torch.no_grad():
        auto, stats = kn.simulate(circuit, x, solver=kn.Solver(**fixed))
        reference, reference_stats = kn.simulate(circuit, x, solver=kn.Solver(**fixed, kernel="gather"))
    assert stats.kernels == [["fused"], ["fused"]]
    assert reference_stats.kernels == [["gather"], ["gather"]]
    torch.testing.assert_close(auto, reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("gradient", [kn.Backprop(), kn.Adjoint()])
def test_training_on_the_fused_kernel_gives_the_gather_paths_gradient(gradient):
    circuit = _mnist_like().double()
    x = torch.rand(4, 64, dtype=torch.float64)
    fixed = {"method": "rk4", "step_size": 0.25}
    grads = {}
    for kernel in ("auto", "fused", "gather"):
        circuit.zero_grad()
        v, stats = kn.simulate(circuit, x, solver=kn.Solver(**fixed, kernel=kernel), gradient=gradient)
        v.square().sum().backward()
        assert any("gather" in paths for paths in stats.kernels) == (kernel == "gather")
        grads[kernel] = torch.cat([p.grad.flatten() for p in circuit.parameters() if p.grad is not None])
    torch.testing.assert_close(grads["auto"], grads["gather"], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads["fused"], grads["gather"], rtol=1e-10, atol=1e-12)
    with pytest.raises(kn.errors.ConfigError, match=r"^kernel 'fused' has no backward pass inside torch.func"):
        torch.func.grad(
            lambda p: (
                circuit.slice(0)
                .kernel(torch.float64, CPU)
                .evaluate(circuit.slice(0).device_family, p, x.T.contiguous(), False, "fused")[0]
                .sum()
            )
        )(circuit.slice(0).params)


class _OwnSigma(ShiftTanh2):
    """A user family that changes σ but inherits its parent's name for it."""

    def activation(self, u, inplace):
        return torch.sin(u)


del kn.devices.Device.registry[_OwnSigma.__name__]  # defining it registered it: other tests iterate the registry


@pytest.mark.parametrize(
    ("family", "auto"),
    [("ShiftRelu1", "fused"), ("MosRelu", "fused"), ("ShiftTanh2", "affine"), (_OwnSigma(), "affine")],
)
def test_auto_takes_the_fused_path_for_cheap_built_in_activations_only(family, auto):
    piece = kn.Slice(kn.topology.random_graph(40, 1200, seed=1), family)
    kernel = piece.kernel(torch.float32, CPU)
    assert kernel.path(piece.device_family, "auto", track=False) == auto
    assert kernel.path(piece.device_family, "auto", track=True) == "affine-vjp"
    small = kn.Slice(kn.topology.random_graph(40, 300, seed=1), family)
    assert small.kernel(torch.float32, CPU).path(small.device_family, "auto", track=False) == "affine"


def test_a_family_the_kernel_does_not_implement_is_refused():
    piece = kn.Slice(kn.topology.random_graph(40, 1200, seed=1), _OwnSigma())
    with pytest.raises(kn.errors.ConfigError, match=r"^kernel 'fused' does not implement device family _OwnSigma$"):
        piece.kernel(torch.float32, CPU).path(piece.device_family, "fused", track=False)


def test_without_numba_auto_uses_torch_and_fused_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(fused, "numba_kernel", lambda: None)
    piece = kn.Slice(kn.topology.random_graph(40, 1200, seed=1), "ShiftRelu1")
    kernel = piece.kernel(torch.float32, CPU)
    assert kernel.path(piece.device_family, "auto", track=False) == "affine"
    with pytest.raises(kn.errors.ConfigError, match=r"^kernel 'fused' needs numba, which cannot be imported [^\n]*$"):
        kernel.path(piece.device_family, "fused", track=False)


def test_the_field_groups_each_edge_once_with_its_node_pair_and_pads_odd_pairs():
    """Pairs joined by 3 edges (two one way, one back) and by 1 edge get one zero-weight slot each."""
    src = np.array([1, 1, 2, 3, 0, 2], dtype=np.int32)
    dst = np.array([2, 2, 1, 0, 3, 3], dtype=np.int32)
    pairs, slot_edge, slot_sign = fused._pair_groups(src, dst, num_nodes=4)
    assert pairs.tolist() == [[2, 1], [2, 1], [3, 0], [3, 2]]  # p ≥ q, sorted by p
    held = slot_sign != 0
    assert sorted(slot_edge[held].tolist()) == list(range(6)) and int((~held).sum()) == 2
    assert slot_sign[held].tolist() == [1 if dst[e] == max(src[e], dst[e]) else -1 for e in slot_edge[held]]


def _field_and_product(piece: kn.Slice, state: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The fused field, its divergence and the vector-Jacobian product (with ``post``) at ``state``."""
    kernel = piece.kernel(state.dtype, CPU)
    rows = kernel.fused().coefficients(piece.device_family, piece.params)
    with torch.no_grad():
        field, trace = piece.field_and_divergence(state, "fused")
        return field, trace, *kernel.fused().vjp(piece.device_family, rows, state, state.flip(0), True)


@pytest.fixture
def small_ranges(monkeypatch):
    """Ranges of a few groups and edges, so that the test circuit is cut into `fused._PARTS` of them."""
    monkeypatch.setattr(fused, "_PART_MIN", 8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_two_kernel_threads_give_the_one_thread_bits(dtype, small_ranges):
    """The groups and edges are cut into the same ranges at any thread count, each summed apart and the sums
    added in one order: the same field, divergence and vector-Jacobian product, bit for bit, at 1 and 2
    threads and in every run, whichever thread took which range (two batch tiles, one ragged)."""
    piece = _piece("ShiftLeakyRelu1", dtype)
    state = torch.randn(piece.num_state, 300, dtype=dtype)
    try:
        runtime.set_kernel_threads(1)
        one = _field_and_product(piece, state)
        runtime.set_kernel_threads(2)
        runs = [_field_and_product(piece, state) for _ in range(3)]
    finally:
        runtime.set_kernel_threads(None)
    for two in runs:
        assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    assert runtime.kernel_threads() == torch.get_num_threads()  # None follows torch again


class _Stalling:
    """The kernel module, except that the first helper thread to call kernel ``name`` blocks until released (as if
    the OS had descheduled it mid-range), and the calling thread starts on it only once a helper has stalled."""

    def __init__(self, kernel: object, name: str) -> None:
        self.kernel, self.name = kernel, name
        self.stalled, self.release, self.finished = threading.Event(), threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> object:
        real = getattr(self.kernel, name)
        if name != self.name:
            return real

        def call(*args: object) -> object:
            if threading.current_thread() is threading.main_thread():
                assert self.stalled.wait(30), "no helper took a range"
                return real(*args)
            if self.stalled.is_set():
                return real(*args)
            self.stalled.set()
            assert self.release.wait(20), "the launch waited for the stalled helper"
            result = real(*args)  # late: its arrays are dropped
            self.finished.set()
            return result

        return call


def test_a_stalled_helper_does_not_hold_the_launch(monkeypatch, small_ranges):
    """A helper blocked in the middle of its range must not delay the launch: the caller runs that range too
    and returns while the helper is still blocked, with the one-thread bits; the helper's late run changes
    nothing that was returned."""
    piece = _piece("ShiftRelu1", torch.float32)
    state = torch.randn(piece.num_state, 40)
    runtime.set_kernel_threads(1)
    try:
        one = _field_and_product(piece, state)
        answers, kernel = [], fused.numba_kernel()
        for name in ("pair_field", "vjp_tile"):  # the field's launch, then the product's
            stalling = _Stalling(kernel, name)
            monkeypatch.setattr(fused, "numba_kernel", lambda stalling=stalling: stalling)
            runtime.set_kernel_threads(2)
            answers.append(_field_and_product(piece, state))  # returns only if the caller did the helper's range
            assert stalling.stalled.is_set()
            stalling.release.set()
            assert stalling.finished.wait(20)
    finally:
        runtime.set_kernel_threads(None)
    for two in answers:
        assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))


def test_mnist_predictions_on_the_shipped_images_are_the_torch_paths(one_torch_thread):
    """The original MNIST topology (2 × 230,068 edges, ShiftRelu1) on the first 100 shipped test images,
    solved by dopri5 as the checkpoint is: the fused kernel and the torch path predict the same digits."""
    images = read_idx(MNIST_SUBSET / "t10k-images-idx3-ubyte.gz")[:100].reshape(-1, 784) / 255.0
    circuit = kn.Circuit(kn.topology.mix_connect(1, 28, 28, 4, 50, (1, 1)), "ShiftRelu1", slices=2, init="gauss")
    with torch.no_grad():
        for piece in circuit.slices:
            piece.params.normal_(0.0, 0.05)
    logits = {}
    for kernel in ("fused", "affine"):
        solver = kn.Solver("dopri5", rtol=1e-3, atol=1e-3, first_step=1e-2, min_step=1e-5, kernel=kernel)
        with torch.no_grad():
            logits[kernel] = kn.Network(circuit, "last10", solver)(torch.from_numpy(images).float())
    assert torch.equal(logits["fused"].argmax(1), logits["affine"].argmax(1))
    assert len(set(logits["fused"].argmax(1).tolist())) > 1  # the parameters separate the images
    torch.testing.assert_close(logits["fused"], logits["affine"], rtol=1e-4, atol=1e-4)  # float32 sums reordered

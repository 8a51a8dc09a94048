"""Topology generators (edge order of the original code) and edge_index validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kirchhoffnet.errors import ConfigError, TopologyError
from kirchhoffnet.runtime import LIMIT_ENV
from kirchhoffnet.topology import (
    chain,
    chain_edges,
    fully_connect,
    fully_connect_edges,
    mix_connect,
    mix_connect_edges,
    neighbor_connect,
    neighbor_connect_edges,
    random_graph,
    validate,
)


def test_fully_connect_order_matches_the_original_loops():
    # Original: for i, for j != i: repeat[0] × (i, j), then repeat[1] × (j, i).
    expected = []
    for i in range(3):
        for j in range(3):
            if i != j:
                expected += [[i, j]] * 2 + [[j, i]] * 1
    assert fully_connect(3, (2, 1)).T.tolist() == expected


def test_fully_connect_without_ground_skips_node_zero():
    edges = fully_connect(4, (1, 1), include_ground=False)
    assert edges.min() == 1 and edges.max() == 3
    assert edges.shape == (2, 3 * 2 * 2)


def test_flow_topology_has_300_edges():
    assert fully_connect(3, (25, 25)).shape == (2, 300)


def test_neighbor_connect_on_a_2x2_image():
    # One 2×2 window over pixels 1..4: every ordered pair of distinct pixels, row-major.
    edges = neighbor_connect(1, 2, 2, 2)
    expected = [[a, b] for a in range(1, 5) for b in range(1, 5) if a != b]
    assert edges.T.tolist() == expected


def test_neighbor_connect_uses_row_major_pixels_on_non_square_images():
    edges = neighbor_connect(1, 2, 3, 2)  # 2 rows × 3 columns, windows at columns 0 and 1
    first_window = {1, 2, 4, 5}
    assert set(edges[:, :12].flatten().tolist()) == first_window


def test_mnist_classifier_topology_size():
    # 625 windows × 240 pairs + 784 × 2 ground edges + 50 hidden × 785 × 2 = 230,068 (the paper's MNIST circuit).
    edges = mix_connect(1, 28, 28, 4, 50, (1, 1))
    assert edges.shape == (2, 230_068)
    assert int(edges.max()) == 834


def test_mix_connect_groups_are_in_order():
    edges = mix_connect(1, 3, 3, 2, 1, (1, 1))
    local = neighbor_connect(1, 3, 3, 2)
    n = local.shape[1]
    assert torch.equal(edges[:, :n], local)
    assert edges[:, n : n + 2].T.tolist() == [[1, 0], [0, 1]]
    assert edges[:, n + 18 : n + 20].T.tolist() == [[0, 10], [10, 0]]
    assert edges.shape[1] == n + 18 + 20


def test_chain_connects_consecutive_nodes():
    assert chain(4, repeat=2).T.tolist() == [[0, 1], [0, 1], [1, 2], [1, 2], [2, 3], [2, 3]]


def test_random_graph_is_valid_and_reproducible():
    edges = random_graph(100, 400, seed=3)
    validate(edges, 100)
    assert torch.equal(edges, random_graph(100, 400, seed=3))
    assert set(edges.flatten().tolist()) >= set(range(1, 100))


@pytest.mark.parametrize(
    ("edges", "num_nodes", "message"),
    [
        ([[0, 1], [1, 40]], 32, r"edge 1 ends at node 40 but the circuit has 32 nodes \(edge_index\[1, 1\]\)"),
        ([[0, -2], [1, 1]], None, r"edge 1 starts at node -2, a negative index \(edge_index\[0, 1\]\)"),
        ([[0, 3], [1, 3]], None, r"edge 1 is a self loop at node 3"),
        ([[0, 0], [1, 0]], None, r"edge 1 is a self loop at ground"),
        (np.zeros((2, 0), dtype=int), None, "the topology has no edges"),
        ([[0, 1, 2]], None, r"must have shape \(2, E\).*got shape \(1, 3\)"),
        ([[0.5, 1], [1, 2]], None, "non-integer node indices"),
        ([[0, 1], [1, 2]], 1, "num_nodes must be at least 2"),
        ("abc", None, "edge_index must"),
    ],
)
def test_validate_names_the_offending_edge(edges, num_nodes, message):
    with pytest.raises(TopologyError, match=message):
        validate(edges, num_nodes)


def test_validate_returns_long_tensor_and_node_count():
    edges, n = validate([[0, 2], [1, 0]])
    assert edges.dtype == torch.long and n == 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fully_connect(1), "num_nodes >= 2"),
        (lambda: fully_connect(3, (0, 0)), "not both zero"),
        (lambda: neighbor_connect(1, 3, 3, 5), "exceeds the image"),
        (lambda: mix_connect(1, 4, 4, 2, -1), "hidden_nodes must be >= 0"),
        (lambda: chain(1), "at least two nodes"),
    ],
)
def test_generator_arguments_are_checked(call, message):
    with pytest.raises(TopologyError, match=message):
        call()


@settings(max_examples=200, deadline=None)
@given(
    channels=st.integers(1, 3),
    height=st.integers(1, 7),
    width=st.integers(1, 7),
    kernel=st.integers(1, 5),
    padding=st.booleans(),
    kernel_repeat=st.integers(1, 3),
    hidden=st.integers(0, 4),
    repeat=st.tuples(st.integers(0, 2), st.integers(0, 2)).filter(lambda r: sum(r) > 0),
)
def test_every_closed_form_edge_count_equals_the_built_topology(
    channels, height, width, kernel, padding, kernel_repeat, hidden, repeat
):
    if not padding and kernel > min(height, width):
        return  # the generator refuses this window
    image = (channels, height, width, kernel)
    built = neighbor_connect(*image, padding=padding, repeat=kernel_repeat).shape[1]
    assert neighbor_connect_edges(*image, padding, kernel_repeat) == built
    built = mix_connect(*image, hidden, repeat=repeat, padding=padding, kernel_repeat=kernel_repeat).shape[1]
    local = neighbor_connect_edges(*image, padding, kernel_repeat)
    assert mix_connect_edges(channels * height * width, hidden, repeat, local) == built
    nodes = height + 1
    for ground in (True, False):
        assert fully_connect_edges(nodes + 1, repeat, ground) == fully_connect(nodes + 1, repeat, ground).shape[1]
        assert chain_edges(nodes + 1, kernel_repeat, ground) == chain(nodes + 1, kernel_repeat, ground).shape[1]


@pytest.mark.parametrize(
    ("build", "builder"),
    [
        (lambda: fully_connect(10**6), "fully_connect"),
        (lambda: neighbor_connect(1, 10**5, 10**5, 3), "neighbor_connect"),
        (lambda: mix_connect(1, 28, 28, 4, hidden_nodes=10**9), "mix_connect"),
        (lambda: chain(10**12), "chain"),
        (lambda: random_graph(10, 10**12), "random_graph"),
    ],
)
def test_an_edge_list_past_the_memory_is_refused_before_allocating(monkeypatch, build, builder):
    monkeypatch.setenv(LIMIT_ENV, "8")
    with pytest.raises(ConfigError, match=rf"^{builder}: the topology of [\d,]+ edges needs at least .* but 8 GB"):
        build()  # fully_connect(10**6) asked torch's allocator for 1 TB, a RuntimeError from inside it

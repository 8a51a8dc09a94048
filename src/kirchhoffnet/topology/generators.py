"""Topology generators: ``edge_index`` builders in the PyTorch Geometric convention.

Each returns a (2, E) ``torch.long`` tensor, row 0 sources and row 1 destinations, node 0
ground. The edge order equals the order the original KirchhoffNet generators emit, because a
checkpoint stores one parameter column per edge in that order. Each generator has a ``*_edges``
twin that counts its edges in closed form without building them (the configs' memory pre-flight
asks for circuits of billions of edges before refusing them); the tests hold the two to each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kirchhoffnet.errors import TopologyError
from kirchhoffnet.runtime import require_memory

EDGE_BYTES = 32  # a (2, E) int64 edge list and one temporary of its size while it is assembled


def _pair_repeat(repeat: int | Sequence[int]) -> tuple[int, int]:
    pair = (int(repeat), int(repeat)) if isinstance(repeat, int) else tuple(int(r) for r in repeat)
    if len(pair) != 2 or min(pair) < 0 or sum(pair) == 0:
        raise TopologyError(
            f"repeat must be two non-negative counts (forward, backward), not both zero; got {repeat!r}"
        )
    return pair[0], pair[1]


def _positive(name: str, value: int) -> int:
    if int(value) < 1:
        raise TopologyError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _require_edges(edges: int, builder: str) -> None:
    """Refuse, before any allocation, an edge list the memory cannot hold (``fully_connect(10**6)`` asked the
    allocator for 1 TB and failed inside torch)."""
    require_memory(float(edges) * EDGE_BYTES, builder, f"topology of {edges:,} edges", "(int64 edge lists)")


def _interleave(first: Tensor, second: Tensor, repeat: tuple[int, int]) -> Tensor:
    """For each pair k: ``repeat[0]`` copies of ``first[:, k]`` then ``repeat[1]`` of ``second[:, k]``."""
    blocks = [first.T.unsqueeze(1).expand(-1, repeat[0], 2), second.T.unsqueeze(1).expand(-1, repeat[1], 2)]
    return torch.cat(blocks, dim=1).reshape(-1, 2).T.contiguous()


def fully_connect(num_nodes: int, repeat: int | Sequence[int] = (1, 1), include_ground: bool = True) -> Tensor:
    """Every ordered pair of distinct nodes, each with parallel devices in both directions.

    For each ordered pair (i, j), i ≠ j, in row-major order: ``repeat[0]`` edges i → j followed
    by ``repeat[1]`` edges j → i. This is the topology of the 2-D flow experiments.

    Args:
        num_nodes: nodes including ground (``num_nodes - 1`` state nodes).
        repeat: parallel devices per pair and direction.
        include_ground: also connect every node to ground.
    """
    num_nodes = _positive("num_nodes", num_nodes)
    if num_nodes < 2:
        raise TopologyError("fully_connect needs num_nodes >= 2 (ground and at least one state node)")
    _require_edges(fully_connect_edges(num_nodes, repeat, include_ground), "fully_connect")
    first = 0 if include_ground else 1
    nodes = torch.arange(first, num_nodes)
    src, dst = torch.meshgrid(nodes, nodes, indexing="ij")
    keep = src != dst
    forward = torch.stack([src[keep], dst[keep]])
    return _interleave(forward, forward.flip(0), _pair_repeat(repeat))


def fully_connect_edges(num_nodes: int, repeat: int | Sequence[int] = (1, 1), include_ground: bool = True) -> int:
    """The number of edges [`fully_connect`][kirchhoffnet.topology.fully_connect] makes."""
    nodes = int(num_nodes) - (0 if include_ground else 1)
    return nodes * (nodes - 1) * sum(_pair_repeat(repeat))


def neighbor_connect(
    channels: int, height: int, width: int, kernel_size: int, padding: bool = False, repeat: int = 1
) -> Tensor:
    """Pixels that share a ``kernel_size`` window, connected both ways (a convolution-like graph).

    Pixel (c, y, x) is node ``1 + c·H·W + y·W + x``, the order of a flattened (C, H, W) image.
    For each window position (row-major), every ordered pair of distinct pixels inside it gets
    ``repeat`` edges; pairs shared by overlapping windows appear once per window, which weights
    near neighbours more.

    Args:
        padding: pad by ``kernel_size - 1`` so that border pixels see full windows.
    """
    channels, height, width = (
        _positive(n, v) for n, v in (("channels", channels), ("height", height), ("width", width))
    )
    kernel_size, repeat = _positive("kernel_size", kernel_size), _positive("repeat", repeat)
    if not padding and kernel_size > min(height, width):
        raise TopologyError(f"kernel_size {kernel_size} exceeds the image ({height}×{width}) and padding is off")
    _require_edges(neighbor_connect_edges(channels, height, width, kernel_size, padding, repeat), "neighbor_connect")
    pixels = torch.arange(1, 1 + channels * height * width, dtype=torch.float64).reshape(1, channels, height, width)
    windows = F.unfold(pixels, kernel_size=kernel_size, padding=kernel_size - 1 if padding else 0)[0].long()
    size = windows.shape[0]
    j, k = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    distinct = j != k
    src = windows[j[distinct]].T.reshape(-1)  # window-major, then (j, k) row-major
    dst = windows[k[distinct]].T.reshape(-1)
    inside = (src != 0) & (dst != 0)  # padded positions carry 0
    edges = torch.stack([src[inside], dst[inside]])
    return edges.repeat_interleave(repeat, dim=1)


def neighbor_connect_edges(
    channels: int, height: int, width: int, kernel_size: int, padding: bool = False, repeat: int = 1
) -> int:
    """The number of edges [`neighbor_connect`][kirchhoffnet.topology.neighbor_connect] makes: Σ over window positions
    of n(n − 1) for the n = C·rows·cols pixels of the window inside the image, which separates into row and column
    sums."""
    k, pad = int(kernel_size), int(kernel_size) - 1 if padding else 0

    def inside(size: int) -> list[int]:  # image rows (or columns) covered by each window position
        return [min(start + k, size) - max(start, 0) for start in range(-pad, size + pad - k + 1)]

    rows, cols, c = inside(int(height)), inside(int(width)), int(channels)
    squares = c * c * sum(r * r for r in rows) * sum(x * x for x in cols)
    return (squares - c * sum(rows) * sum(cols)) * int(repeat)


def mix_connect(
    channels: int,
    height: int,
    width: int,
    kernel_size: int,
    hidden_nodes: int,
    repeat: int | Sequence[int] = (1, 0),
    padding: bool = False,
    kernel_repeat: int = 1,
) -> Tensor:
    """The image topology of the KirchhoffNet classifiers: local windows plus a hidden layer.

    Three groups, in this order: [`neighbor_connect`][kirchhoffnet.topology.neighbor_connect] among the pixels; for each
    pixel, ``repeat[0]`` edges pixel → ground and ``repeat[1]`` ground → pixel; then ``hidden_nodes``
    extra nodes, each connected to ground and to every pixel (``repeat[0]`` edges into the
    hidden node, ``repeat[1]`` out of it). A classifier reads its logits off the last hidden
    nodes.
    """
    hidden_nodes = int(hidden_nodes)
    if hidden_nodes < 0:
        raise TopologyError(f"hidden_nodes must be >= 0, got {hidden_nodes}")
    pair = _pair_repeat(repeat)
    last_pixel = int(channels) * int(height) * int(width)  # not local.max(): 1×1 windows make no local edges
    _require_edges(mix_connect_edges(last_pixel, hidden_nodes, pair, 0), "mix_connect")  # the local edges: below
    local = neighbor_connect(channels, height, width, kernel_size, padding=padding, repeat=kernel_repeat)
    pixels = torch.arange(1, last_pixel + 1)
    ground = torch.zeros_like(pixels)
    to_ground = _interleave(torch.stack([pixels, ground]), torch.stack([ground, pixels]), pair)
    hidden = torch.arange(last_pixel + 1, last_pixel + 1 + hidden_nodes)
    h, i = torch.meshgrid(hidden, torch.arange(last_pixel + 1), indexing="ij")
    into_hidden = torch.stack([i.reshape(-1), h.reshape(-1)])
    hidden_edges = _interleave(into_hidden, into_hidden.flip(0), pair)
    return torch.cat([local, to_ground, hidden_edges], dim=1)


def mix_connect_edges(pixels: int, hidden_nodes: int, repeat: int | Sequence[int], local_edges: int) -> int:
    """The number of edges [`mix_connect`][kirchhoffnet.topology.mix_connect] makes on ``pixels`` pixels (C·H·W), given
    the [`neighbor_connect_edges`][kirchhoffnet.topology.neighbor_connect_edges] of its windows (``local_edges``)."""
    return int(local_edges) + (int(pixels) + int(hidden_nodes) * (int(pixels) + 1)) * sum(_pair_repeat(repeat))


def chain(num_nodes: int, repeat: int = 1, include_ground: bool = True) -> Tensor:
    """Consecutive nodes in a line, ``repeat`` parallel edges n → n+1 (a ladder network)."""
    num_nodes = _positive("num_nodes", num_nodes)
    first = 0 if include_ground else 1
    if num_nodes - first < 2:
        raise TopologyError(f"chain needs at least two nodes to connect, got num_nodes={num_nodes}")
    _require_edges(chain_edges(num_nodes, repeat, include_ground), "chain")
    nodes = torch.arange(first, num_nodes - 1)
    edges = torch.stack([nodes, nodes + 1])
    return edges.repeat_interleave(_positive("repeat", repeat), dim=1)


def chain_edges(num_nodes: int, repeat: int = 1, include_ground: bool = True) -> int:
    """The number of edges [`chain`][kirchhoffnet.topology.chain] makes."""
    return (int(num_nodes) - (1 if include_ground else 2)) * int(repeat)


def random_graph(num_nodes: int, num_edges: int, seed: int = 0, ground_fraction: float = 0.1) -> Tensor:
    """Random directed edges between distinct nodes, for tests and SPICE cross-checks.

    About ``ground_fraction`` of the edges are forced to touch ground, which keeps the circuit's
    voltages anchored; every state node gets at least one edge when ``num_edges`` allows.
    """
    num_nodes, num_edges = _positive("num_nodes", num_nodes), _positive("num_edges", num_edges)
    if num_nodes < 2:
        raise TopologyError("random_graph needs num_nodes >= 2")
    _require_edges(num_edges, "random_graph")
    rng = torch.Generator().manual_seed(seed)
    src = torch.randint(1, num_nodes, (num_edges,), generator=rng)
    covered = min(num_edges, num_nodes - 1)
    src[:covered] = torch.arange(1, covered + 1)  # every state node gets an edge
    offset = torch.randint(1, num_nodes, (num_edges,), generator=rng)
    dst = (src + offset) % num_nodes  # 0 < offset < num_nodes, so never equal to src
    to_ground = torch.rand(num_edges, generator=rng) < ground_fraction
    dst = torch.where(to_ground, torch.zeros_like(dst), dst)
    flip = torch.rand(num_edges, generator=rng) < 0.5
    edges = torch.stack([torch.where(flip, dst, src), torch.where(flip, src, dst)])
    return edges

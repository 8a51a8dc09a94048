"""Checking an ``edge_index`` before it becomes a circuit."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet.errors import TopologyError


def as_edge_index(edges: Any) -> Tensor:
    """Convert a (2, E) array-like of node indices into a ``torch.long`` tensor.

    Accepts tensors, NumPy arrays and nested lists. Raises [`TopologyError`][kirchhoffnet.errors.TopologyError] for
    anything that is not a (2, E) array of integers.
    """
    if isinstance(edges, Tensor):
        tensor = edges.detach().cpu()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(edges))
        except (TypeError, ValueError) as exc:
            raise TopologyError(f"edge_index must be a (2, E) array of node indices: {exc}") from None
    if tensor.is_floating_point():
        if not torch.equal(tensor, tensor.round()):
            raise TopologyError("edge_index holds non-integer node indices; node indices are whole numbers")
    elif tensor.dtype == torch.bool or tensor.is_complex():
        raise TopologyError(f"edge_index must hold integer node indices, got dtype {tensor.dtype}")
    if tensor.dim() != 2 or tensor.shape[0] != 2:
        raise TopologyError(
            f"edge_index must have shape (2, E): row 0 sources, row 1 destinations; got shape {tuple(tensor.shape)}"
        )
    return tensor.to(torch.long).contiguous()


def validate(edge_index: Any, num_nodes: int | None = None) -> tuple[Tensor, int]:
    """Check a topology and return it as a long tensor with its node count.

    Args:
        edge_index: (2, E) node indices; row 0 sources, row 1 destinations. Node 0 is ground.
        num_nodes: number of nodes including ground. ``None`` takes the largest index + 1.

    Returns:
        ``(edge_index, num_nodes)``.

    Raises:
        TopologyError: empty graph, negative or out-of-range node, or self loop.
    """
    edges = as_edge_index(edge_index)
    num_edges = edges.shape[1]
    if num_edges == 0:
        raise TopologyError("the topology has no edges; a circuit needs at least one device")
    negative = (edges < 0).nonzero()
    if len(negative):
        row, col = (int(x) for x in negative[0])
        end = "starts" if row == 0 else "ends"
        raise TopologyError(
            f"edge {col} {end} at node {int(edges[row, col])}, a negative index (edge_index[{row}, {col}]); "
            "nodes are numbered 0 (ground) to num_nodes - 1"
        )
    largest = int(edges.max())
    if num_nodes is None:
        num_nodes = largest + 1
    elif int(num_nodes) < 2:
        raise TopologyError(f"num_nodes must be at least 2 (ground and one state node), got {num_nodes}")
    num_nodes = int(num_nodes)
    if largest >= num_nodes:
        row, col = (int(x) for x in (edges >= num_nodes).nonzero()[0])
        end = "starts" if row == 0 else "ends"
        raise TopologyError(
            f"edge {col} {end} at node {int(edges[row, col])} but the circuit has {num_nodes} nodes "
            f"(edge_index[{row}, {col}]); raise num_nodes or fix the edge"
        )
    loops = (edges[0] == edges[1]).nonzero()
    if len(loops):
        col = int(loops[0])
        node = int(edges[0, col])
        where = "ground" if node == 0 else f"node {node}"
        raise TopologyError(
            f"edge {col} is a self loop at {where} (edge_index[:, {col}] = [{node}, {node}]); "
            "a two-terminal device needs two distinct nodes"
        )
    return edges, num_nodes

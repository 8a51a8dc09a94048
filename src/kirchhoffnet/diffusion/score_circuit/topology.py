"""Where the score circuit's devices sit: its node numbering and ``edge_index``, apart from what the devices are.

Nodes: ground (0), the ``dim`` data nodes (1 … dim), the ``hidden`` hidden nodes, then the ``driven`` source
nodes (time nodes, then class nodes). The edge order is part of the layout: the devices into the hidden
nodes come first, grouped (inputs, hidden), which is what lets the hidden balance be dense arithmetic.
"""

from __future__ import annotations

import torch
from torch import Tensor


def score_topology(dim: int, hidden: int, driven: int, repeat: int = 1) -> Tensor:
    """``edge_index`` of the score circuit (see the module docstring for the node numbering): ground, data,
    hidden, then the ``driven`` source nodes (time nodes, then class nodes).

    Data–hidden pairs get ``repeat`` parallel devices; driven–hidden, data–ground and data–driven pairs one.

    Shapes:
        Returns (2, E) long, E = hidden (dim·repeat + driven) + dim (1 + driven).
    """
    data = torch.arange(1, dim + 1)
    hid = torch.arange(dim + 1, dim + hidden + 1)
    sources = torch.arange(dim + hidden + 1, dim + hidden + driven + 1)
    pairs = [
        torch.cartesian_prod(data, hid).repeat(repeat, 1),
        torch.cartesian_prod(sources, hid),
        torch.stack([data, torch.zeros_like(data)], dim=1),
        torch.cartesian_prod(data, sources),
    ]
    return torch.cat(pairs).t().contiguous()

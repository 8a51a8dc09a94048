"""Circuit topologies as ``edge_index`` (2, E) tensors, and their validation."""

from kirchhoffnet.topology.generators import (
    chain,
    chain_edges,
    fully_connect,
    fully_connect_edges,
    mix_connect,
    mix_connect_edges,
    neighbor_connect,
    neighbor_connect_edges,
    random_graph,
)
from kirchhoffnet.topology.validate import as_edge_index, validate

__all__ = [
    "as_edge_index",
    "chain",
    "chain_edges",
    "fully_connect",
    "fully_connect_edges",
    "mix_connect",
    "mix_connect_edges",
    "neighbor_connect",
    "neighbor_connect_edges",
    "random_graph",
    "validate",
]

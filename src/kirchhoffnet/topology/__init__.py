"""Circuit topologies as ``edge_index`` (2, E) tensors, and their validation."""

from kirchhoffnet.topology.generators import chain, fully_connect, mix_connect, neighbor_connect, random_graph
from kirchhoffnet.topology.validate import as_edge_index, validate

__all__ = ["as_edge_index", "chain", "fully_connect", "mix_connect", "neighbor_connect", "random_graph", "validate"]

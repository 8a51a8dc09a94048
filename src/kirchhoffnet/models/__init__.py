"""Models built from a circuit and a solver: flows (density, sampling) and feed-forward networks."""

from kirchhoffnet.models.flow import Flow, standard_normal_log_prob
from kirchhoffnet.models.network import Network
from kirchhoffnet.models.readout import First, Last, Linear, resolve_readout

__all__ = ["First", "Flow", "Last", "Linear", "Network", "resolve_readout", "standard_normal_log_prob"]

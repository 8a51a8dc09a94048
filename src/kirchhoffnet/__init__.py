"""kirchhoffnet: analog ODE neural networks whose forward pass is the physics of a circuit.

A :class:`Circuit` is a sequence of time slices; on each, node voltages follow Kirchhoff's
current law through learnable two-terminal devices. :func:`simulate` integrates it,
:class:`Flow` turns it into a continuous normalizing flow with an exact O(E) log-density, and
:class:`Network` into a classifier or regressor.
"""

from typing import Any

from kirchhoffnet import compat, devices, topology
from kirchhoffnet.checkpoint import load, save
from kirchhoffnet.circuit import Circuit, Slice
from kirchhoffnet.errors import KirchhoffError
from kirchhoffnet.models import Flow, Network
from kirchhoffnet.solve import Solver, SolveStats, simulate, simulate_log_density, trajectory
from kirchhoffnet.version import __version__

# Subpackages with heavier imports (matplotlib, ngspice, torchsde) load on first use: kn.spice.verify(...).
_LAZY = {"diffusion", "hardware", "rram", "spice", "training"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"kirchhoffnet.{name}")
    raise AttributeError(f"module 'kirchhoffnet' has no attribute {name!r}")


def train(config: Any, out: Any = None, **kwargs: Any) -> Any:
    """Train a model from a config (object, mapping or YAML path); see :func:`kirchhoffnet.training.train`."""
    from kirchhoffnet.training import train as run

    return run(config, out, **kwargs)


__all__ = [
    "Circuit",
    "Flow",
    "KirchhoffError",
    "Network",
    "Slice",
    "SolveStats",
    "Solver",
    "__version__",
    "compat",
    "devices",
    "diffusion",
    "hardware",
    "load",
    "rram",
    "save",
    "simulate",
    "simulate_log_density",
    "spice",
    "topology",
    "train",
    "training",
    "trajectory",
]

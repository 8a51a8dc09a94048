"""kirchhoffnet: analog ODE neural networks whose forward pass is the physics of a circuit.

A [`Circuit`][kirchhoffnet.Circuit] is a sequence of time slices; on each, node voltages follow Kirchhoff's
current law through learnable two-terminal devices. [`simulate`][kirchhoffnet.solve.simulate.simulate] integrates it,
[`Flow`][kirchhoffnet.Flow] turns it into a continuous normalizing flow with an exact O(E) log-density, and
[`Network`][kirchhoffnet.Network] into a classifier or regressor.
"""

from typing import TYPE_CHECKING

from kirchhoffnet import compat, devices, topology
from kirchhoffnet.checkpoint import load, save
from kirchhoffnet.circuit import Circuit, Slice
from kirchhoffnet.errors import KirchhoffError
from kirchhoffnet.models import Flow, Network
from kirchhoffnet.solve import Adjoint, Backprop, Solver, SolveStats, simulate, simulate_log_density, trajectory
from kirchhoffnet.version import __version__

if TYPE_CHECKING:  # the real signature for type checkers; loaded on first use at run time
    from kirchhoffnet.runs import open
    from kirchhoffnet.training import train

# Subpackages with heavier imports (matplotlib, ngspice, torchsde) load on first use: kn.spice.verify(...),
# and so do kn.train (kirchhoffnet.training.train: train a model from a config object, mapping or YAML path)
# and kn.open (kirchhoffnet.runs.open: any saved model, from a run directory, a checkpoint or an original result).
_LAZY = {"diffusion", "hardware", "rram", "spice", "training"}


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY:
        return importlib.import_module(f"kirchhoffnet.{name}")
    if name == "train":
        return importlib.import_module("kirchhoffnet.training").train
    if name == "open":
        return importlib.import_module("kirchhoffnet.runs").open
    raise AttributeError(f"module 'kirchhoffnet' has no attribute {name!r}")


__all__ = [
    "Adjoint",
    "Backprop",
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
    "open",
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

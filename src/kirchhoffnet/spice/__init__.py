"""SPICE export of circuits and their verification against ngspice.

``verify(model, x)`` simulates the same inputs in ngspice and in kirchhoffnet and reports how far
the node voltages differ; ``slice_netlist`` writes the netlist of one slice, ``spice_trajectory``
runs a whole circuit slice by slice in ngspice, ``run_ngspice`` and ``read_raw`` are the small
tool layer underneath. No Python SPICE binding is needed, only the ``ngspice`` executable.
"""

from kirchhoffnet.spice.netlist import SpiceOptions, slice_netlist
from kirchhoffnet.spice.raw import RawPlot, read_raw
from kirchhoffnet.spice.report import VerifyReport
from kirchhoffnet.spice.runner import INSTALL_HINT, RunResult, find_ngspice, has_ngspice, run_ngspice
from kirchhoffnet.spice.transient import SpiceTrajectory, spice_trajectory
from kirchhoffnet.spice.verify import REFERENCE_SOLVER, random_inputs, verify

__all__ = [
    "INSTALL_HINT",
    "REFERENCE_SOLVER",
    "RawPlot",
    "RunResult",
    "SpiceOptions",
    "SpiceTrajectory",
    "VerifyReport",
    "find_ngspice",
    "has_ngspice",
    "random_inputs",
    "read_raw",
    "run_ngspice",
    "slice_netlist",
    "spice_trajectory",
    "verify",
]

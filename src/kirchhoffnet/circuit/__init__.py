"""The circuit model: slices of KCL dynamics over node voltages."""

from kirchhoffnet.circuit._kcl import KclKernel
from kirchhoffnet.circuit.circuit import Circuit
from kirchhoffnet.circuit.encoding import Encoding
from kirchhoffnet.circuit.power import EnergyTally, Power
from kirchhoffnet.circuit.slice import Slice

__all__ = ["Circuit", "Encoding", "EnergyTally", "KclKernel", "Power", "Slice"]
